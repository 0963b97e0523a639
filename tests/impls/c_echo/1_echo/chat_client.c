/* Chat client, stage 1 (echo), in C: type lines, see them come back.
 *
 * Behind a three-line chat_client.py that execs it (see chat_server.c).  One
 * select() watches both the keyboard (standard input) and the server, so a
 * message that arrives while the user types nothing is printed at once.
 * (POSIX only: Windows' select() takes sockets, not standard input.)
 *
 * Build:  cc -O2 -o chat_client chat_client.c
 * Run:    ./chat_client [--host HOST] [--port PORT]   (default 127.0.0.1, 7777)
 */

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER_LENGTH 4
#define MAX_MSG_LENGTH 1024

static unsigned char line[8192];       /* what was typed, up to the next line end */
static size_t line_length;
static int line_too_long;              /* the current line passed the buffer: drop it */
static unsigned char received[2 * (HEADER_LENGTH + MAX_MSG_LENGTH)];
static size_t received_length;

static void send_all(int server, const unsigned char *data, size_t length) {
    while (length > 0) {
        ssize_t sent = send(server, data, length, 0);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "chat_client: the server closed the connection\n");
            exit(1);
        }
        data += sent;
        length -= (size_t)sent;
    }
}

/* One typed line, without its line ending ("\n" or Windows' "\r\n"). */
static void send_line(int server, unsigned char *text, size_t length, int too_long) {
    if (length > 0 && text[length - 1] == '\r')
        length--;
    if (length == 0 && !too_long)
        return;                        /* an empty line is not a message */
    if (too_long || length > MAX_MSG_LENGTH) {
        fprintf(stderr, "error: the line is over %d bytes: not sent\n", MAX_MSG_LENGTH);
        return;
    }
    char header[HEADER_LENGTH + 1];
    snprintf(header, sizeof header, "%04zu", length);
    send_all(server, (const unsigned char *)header, HEADER_LENGTH);
    send_all(server, text, length);
}

/* Read what was typed; send every whole line. Returns 0 at the end of input. */
static int read_keyboard(int server) {
    ssize_t got = read(STDIN_FILENO, line + line_length, sizeof line - line_length);
    if (got <= 0) {
        if (line_length > 0 || line_too_long)   /* a last line without a line end */
            send_line(server, line, line_length, line_too_long);
        return 0;
    }
    line_length += (size_t)got;
    unsigned char *end;
    while ((end = memchr(line, '\n', line_length)) != NULL) {
        size_t length = (size_t)(end - line);
        send_line(server, line, length, line_too_long);
        line_too_long = 0;
        memmove(line, end + 1, line_length - length - 1);
        line_length -= length + 1;
    }
    if (line_length == sizeof line) {  /* far too long for a message: keep only its fate */
        line_too_long = 1;
        line_length = 0;
    }
    return 1;
}

/* Read from the server; print every whole message on a line of its own. */
static void read_server(int server) {
    ssize_t got = recv(server, received + received_length,
                       sizeof received - received_length, 0);
    if (got <= 0) {
        fprintf(stderr, "chat_client: the server closed the connection\n");
        exit(1);
    }
    received_length += (size_t)got;
    size_t start = 0;
    while (received_length - start >= HEADER_LENGTH) {
        int length = 0;
        for (int i = 0; i < HEADER_LENGTH; i++)
            length = received[start + i] >= '0' && received[start + i] <= '9'
                     ? length * 10 + (received[start + i] - '0') : MAX_MSG_LENGTH + 1;
        if (length > MAX_MSG_LENGTH) {
            fprintf(stderr, "chat_client: the server sent a bad header\n");
            exit(1);
        }
        if (received_length - start < (size_t)(HEADER_LENGTH + length))
            break;                     /* the rest comes later */
        fwrite(received + start + HEADER_LENGTH, 1, (size_t)length, stdout);
        fputc('\n', stdout);
        start += HEADER_LENGTH + length;
    }
    fflush(stdout);
    memmove(received, received + start, received_length - start);
    received_length -= start;
}

static int connect_to(const char *host, const char *port) {
    struct addrinfo hints = {0}, *found;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int error = getaddrinfo(host, port, &hints, &found);
    if (error != 0) {
        fprintf(stderr, "chat_client: %s:%s: %s\n", host, port, gai_strerror(error));
        exit(1);
    }
    int server = socket(found->ai_family, found->ai_socktype, 0);
    if (server < 0 || connect(server, found->ai_addr, found->ai_addrlen) < 0) {
        fprintf(stderr, "chat_client: can't connect to %s:%s: %s\n", host, port,
                strerror(errno));
        exit(1);
    }
    freeaddrinfo(found);
    return server;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *port = "7777";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = argv[i + 1];
    }
    signal(SIGPIPE, SIG_IGN);
    int server = connect_to(host, port);
    for (;;) {
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(STDIN_FILENO, &readable);
        FD_SET(server, &readable);
        if (select(server + 1, &readable, NULL, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            perror("chat_client: select");
            return 1;
        }
        if (FD_ISSET(server, &readable))
            read_server(server);
        if (FD_ISSET(STDIN_FILENO, &readable) && !read_keyboard(server)) {
            close(server);             /* end of input: leave, and say all is well */
            return 0;
        }
    }
}
