/* Chat server, stage 1 (echo), in C: every message comes back to its sender.
 *
 * The kit's proof that the grader judges behaviour, not the language: this
 * program sits behind a three-line chat_server.py that execs it
 * (tests/test_c_implementation.py builds it and grades it).  One thread,
 * select(), non-blocking sockets:
 *   - each client has an input buffer: bytes wait there until a whole message
 *     (4 ASCII digits of length, then that many bytes) has arrived;
 *   - each client has an output queue: replies wait there, and at the end of
 *     each turn the server sends what the socket takes without blocking;
 *   - a bad header gets "ERROR <reason>", then that connection is closed once
 *     the ERROR is sent.
 *
 * Build:  cc -O2 -o chat_server chat_server.c
 * Run:    ./chat_server [--host HOST] [--port PORT]   (default 0.0.0.0, 7777)
 *
 * -DPLANT_PARTIAL_HEADER builds a planted mistake: each recv() is taken to
 * hold whole messages, and what is left of a message that arrived in pieces
 * is thrown away (the grader's check 1.3 must catch it).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#define RECV_SIZE 4096
#define MAX_BACKLOG (1024 * 1024)   /* unsent bytes a client may owe us before it is dropped */
#define MAX_CLIENTS (FD_SETSIZE - 8)

struct client {
    int fd;                                          /* -1: this slot is free */
    unsigned char in[HEADER_LENGTH + MAX_MSG_LENGTH + RECV_SIZE];
    size_t in_length;                                /* bytes waiting in `in` */
    unsigned char *out;                              /* replies not sent yet */
    size_t out_length, out_capacity;
    int closing;                                     /* close once `out` is sent */
};

static struct client clients[MAX_CLIENTS];

static void set_non_blocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
}

static void remove_client(struct client *c) {
    close(c->fd);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Queue one framed message for the client: the header, then the payload. */
static void queue_message(struct client *c, const unsigned char *payload, size_t length) {
    char header[HEADER_LENGTH + 1];
    size_t needed = c->out_length + HEADER_LENGTH + length;
    if (needed > MAX_BACKLOG) {        /* it stopped reading: never grow without bound */
        c->closing = 1;
        c->out_length = 0;
        return;
    }
    if (needed > c->out_capacity) {
        size_t capacity = needed * 2;
        unsigned char *bigger = realloc(c->out, capacity);
        if (bigger == NULL) {
            c->closing = 1;
            return;
        }
        c->out = bigger;
        c->out_capacity = capacity;
    }
    snprintf(header, sizeof header, "%04zu", length);
    memcpy(c->out + c->out_length, header, HEADER_LENGTH);
    memcpy(c->out + c->out_length + HEADER_LENGTH, payload, length);
    c->out_length = needed;
}

/* The length a header announces, or -1 when it is not exactly 4 ASCII digits. */
static int header_length(const unsigned char *header) {
    int length = 0;
    for (int i = 0; i < HEADER_LENGTH; i++) {
        if (header[i] < '0' || header[i] > '9')
            return -1;
        length = length * 10 + (header[i] - '0');
    }
    return length;
}

/* Take every whole message out of the client's input buffer and echo it. */
static void handle_input(struct client *c) {
    size_t start = 0;
    while (!c->closing && c->in_length - start >= HEADER_LENGTH) {
        int length = header_length(c->in + start);
        if (length < 0 || length > MAX_MSG_LENGTH) {
            const char *error = "ERROR bad header: expected 4 digits, at most 1024";
            queue_message(c, (const unsigned char *)error, strlen(error));
            c->closing = 1;            /* the stream can't be trusted any more */
            break;
        }
        if (c->in_length - start < (size_t)(HEADER_LENGTH + length))
            break;                     /* the rest of this message has not come yet */
        queue_message(c, c->in + start + HEADER_LENGTH, length);
        start += HEADER_LENGTH + length;
    }
#ifdef PLANT_PARTIAL_HEADER
    start = c->in_length;              /* the planted mistake: a partial message is lost */
#endif
    memmove(c->in, c->in + start, c->in_length - start);
    c->in_length -= start;
}

static void read_from(struct client *c) {
    ssize_t got = recv(c->fd, c->in + c->in_length, RECV_SIZE, 0);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        remove_client(c);              /* it left (or its connection failed) */
        return;
    }
    if (got > 0) {
        c->in_length += (size_t)got;
        handle_input(c);
    }
}

/* Send what the socket takes now, without waiting; keep the rest for later. */
static void send_queued(struct client *c) {
    if (c->out_length > 0) {
        ssize_t sent = send(c->fd, c->out, c->out_length, 0);
        if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            remove_client(c);
            return;
        }
        if (sent > 0) {
            memmove(c->out, c->out + sent, c->out_length - (size_t)sent);
            c->out_length -= (size_t)sent;
        }
    }
    if (c->closing && c->out_length == 0)
        remove_client(c);
}

static void accept_clients(int listener) {
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            return;                    /* no one else is waiting (EAGAIN) */
        struct client *free_slot = NULL;
        for (int i = 0; i < MAX_CLIENTS && free_slot == NULL; i++)
            if (clients[i].fd < 0)
                free_slot = &clients[i];
        if (free_slot == NULL || fd >= FD_SETSIZE) {
            close(fd);                 /* select() can't watch more */
            continue;
        }
        set_non_blocking(fd);
        free_slot->fd = fd;
    }
}

static int listen_on(const char *host, const char *port) {
    struct addrinfo hints = {0}, *found;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int error = getaddrinfo(host, port, &hints, &found);
    if (error != 0) {
        fprintf(stderr, "chat_server: %s:%s: %s\n", host, port, gai_strerror(error));
        exit(1);
    }
    int listener = socket(found->ai_family, found->ai_socktype, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (listener < 0 || bind(listener, found->ai_addr, found->ai_addrlen) < 0
            || listen(listener, 128) < 0) {
        fprintf(stderr, "chat_server: can't listen on %s:%s: %s\n", host, port, strerror(errno));
        exit(1);
    }
    freeaddrinfo(found);
    set_non_blocking(listener);
    return listener;
}

int main(int argc, char **argv) {
    const char *host = "0.0.0.0", *port = "7777";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = argv[i + 1];
    }
    signal(SIGPIPE, SIG_IGN);          /* a client gone mid-send is an error, not our death */
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    int listener = listen_on(host, port);
    fprintf(stderr, "Chat server (stage 1, C) listening on %s:%s\n", host, port);

    for (;;) {
        fd_set readable, writable;
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_SET(listener, &readable);
        int highest = listener;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0)
                continue;
            if (!c->closing)
                FD_SET(c->fd, &readable);
            if (c->out_length > 0)     /* ask about writability only while we owe bytes */
                FD_SET(c->fd, &writable);
            if (c->fd > highest)
                highest = c->fd;
        }
        if (select(highest + 1, &readable, &writable, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            perror("chat_server: select");
            return 1;
        }
        if (FD_ISSET(listener, &readable))
            accept_clients(listener);
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd >= 0 && FD_ISSET(clients[i].fd, &readable))
                read_from(&clients[i]);
        for (int i = 0; i < MAX_CLIENTS; i++)   /* the end of the turn: send what we queued */
            if (clients[i].fd >= 0)
                send_queued(&clients[i]);
    }
}
