"""The class report: report.html, one page of a batch grading for the teacher.

Written by batch.py at the end of each run, from the rows (rows.py): the scores
per stage, the checks most failed, a students × checks grid, and why each
student lost points.
"""

from __future__ import annotations

import html
import statistics
import urllib.parse
from collections import Counter
from datetime import datetime

from grader.teach.rows import Row, all_checks, check_order, describe_row, failure_counts
from grader.teach.submissions import NO_SUBMISSION


# --- report.html --------------------------------------------------------------------------
# One page, no script, no network: plain HTML and CSS, inline SVG for the charts.
# Everything that comes from a submission (names, program output) goes through esc().

def esc(value) -> str:
    return html.escape(str(value), quote=True)


STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; font-size: 1.25em; }
.meta { color: #555; } .charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 0.3em; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 2px 6px; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; }
.grid td, .grid th { padding: 1px 3px; text-align: center; font-size: 12px; }
.grid th.name, .grid td.name { text-align: left; white-space: nowrap; }
.grid th.check { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: normal; }
.grid td.name { position: sticky; left: 0; background: #fff; }
.grid th { position: sticky; top: 0; } .grid th.name { left: 0; z-index: 1; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.warn { color: #a00; font-weight: 600; }
.pass { background: #c8ebc8; } .fail { background: #f5b5b5; } .none { background: #e4e4e4; color: #777; }
.status-graded { } .status-timeout, .status-error { color: #a00; font-weight: 600; }
.status-no { color: #777; }
.bar { display: inline-block; height: 0.8em; background: #d66; vertical-align: middle; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f7f7;
      border: 1px solid #ddd; padding: 0.5em; font-size: 12px; max-width: 60em; }
td, th, p, h3, summary { overflow-wrap: anywhere; }
details { margin-top: 0.6em; } summary { cursor: pointer; color: #333; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@media print { body { margin: 0; font-size: 11px; } h2 { break-after: avoid; }
               tr, figure, pre { break-inside: avoid; } a { color: inherit; text-decoration: none; } }
"""


def report(rows: list[Row], options, warnings: list[str] = ()) -> str:
    """The page, for the rows of a run of batch.py with its Options (stages graded, the
    submissions' folder) and the warnings it gave."""
    graded = [r for r in rows if r.status == "graded"]
    counts = Counter(r.status for r in rows)
    checks = all_checks(rows)
    failed = failure_counts(rows)
    # The checks most students failed come first: they tell the teacher what to explain again.
    ordered = sorted(checks, key=lambda c: (-failed.get(c["number"], 0), check_order(c)))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>Chat kit: class report</title><style>%s</style></head><body>" % STYLE,
             "<h1>Chat kit: class report</h1>",
             '<p class="meta">%d student%s: %s. Stages graded: %s. Written %s from %s.</p>'
             % (len(rows), "" if len(rows) == 1 else "s", esc(", ".join("%d %s" % (counts[s], s) for s in
                                         ("graded", "timeout", "error", NO_SUBMISSION)
                                         if counts[s]) or "none"),
                esc(", ".join(options.stages)), esc(datetime.now().strftime("%Y-%m-%d %H:%M")),
                esc(options.submissions))]
    parts += ['<p class="warn">%s</p>' % esc(line) for line in warnings]
    parts += distributions(rows, options.stages)
    parts += failed_checks(ordered, failed, len(graded))
    parts += grid(rows, ordered)
    parts += student_table(rows, options.stages)
    parts += details(rows)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# The histograms' buckets: a "nice" size (1, 2, 5, 10, 20, 25, 50 ... points) that gives at
# most MOST_BARS bars, each wide enough for its label ("120–127") at LABEL_PX per character.
NICE_SIZES = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)
MOST_BARS = 10
LABEL_PX = 6.2      # a generous width of one character at the labels' 10 px font
MIN_BAR = 26        # px: room for a count of three digits above the bar


def bucket_size(maximum: int) -> int:
    for size in NICE_SIZES:
        if (maximum + 1 + size - 1) // size <= MOST_BARS:
            return size
    return (maximum + MOST_BARS) // MOST_BARS


def buckets(maximum: int) -> list[tuple[int, int]]:
    """(low, high) points of each bar: [(0, 1), (2, 3), ..., (16, 17)] for a maximum of 17."""
    size = bucket_size(max(maximum, 0))
    return [(low, min(low + size - 1, maximum)) for low in range(0, max(maximum, 0) + 1, size)]


def histogram(label: str, scores: list[int], maximum: int) -> str:
    """An inline SVG bar chart: how many students got each range of scores. Every bar has its
    label under it and its count above it, and is wide enough that no two labels touch, for
    a class of 1 or of 300."""
    ranges = buckets(maximum)
    names = [str(low) if high <= low else "%d–%d" % (low, high) for low, high in ranges]
    bar = max(MIN_BAR, max(len(n) for n in names) * LABEL_PX + 8)
    width, height, bottom, top = len(ranges) * bar, 130, 20, 14
    counts = [0] * len(ranges)
    size = bucket_size(max(maximum, 0))
    for score in scores:
        counts[min(max(int(score) // size, 0), len(ranges) - 1)] += 1
    tallest = max(counts) or 1
    svg = ['<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">'
           % (width, height, width, height, esc(label))]
    for i, (count, name) in enumerate(zip(counts, names)):
        h = (height - bottom - top) * count / tallest
        x, y = i * bar, height - bottom - h
        svg.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#5b8def">'
                   '<title>%s points: %d student%s</title></rect>'
                   % (x + 1, y, bar - 2, h, esc(name), count, "" if count == 1 else "s"))
        if count:
            svg.append('<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%d</text>'
                       % (x + bar / 2, y - 2, count))
        svg.append('<text class="bucket" x="%.1f" y="%d" font-size="10" text-anchor="middle">'
                   '%s</text>' % (x + bar / 2, height - 6, esc(name)))
    svg.append('<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#888"/></svg>'
               % (height - bottom, width, height - bottom))
    return "".join(svg)


def distributions(rows: list[Row], stages: list[str]) -> list[str]:
    graded = [r for r in rows if r.status == "graded"]
    out = ["<h2>Scores per stage</h2>"]
    if not graded:
        return out + ["<p>No submission was graded.</p>"]
    not_graded = len(rows) - len(graded)
    out.append("<p>%d graded student%s%s. Bars: how many students got that many points.</p>"
               % (len(graded), "" if len(graded) == 1 else "s", " (the %d not graded are left out)" % not_graded
                  if not_graded else ""))
    out.append('<div class="charts">')
    for stage in stages:
        points = [r.stage_points(stage) for r in graded]
        maximum = max(m for _, m in points)
        scores = [p for p, _ in points]
        out.append("<figure><figcaption>%s: mean %.1f of %d</figcaption>%s</figure>"
                   % (esc(stage), statistics.mean(scores), maximum,
                      histogram(stage, scores, maximum)))
    totals = [r.total for r in graded]
    maximum = max(r.max_score for r in graded)
    out.append("<figure><figcaption>total: mean %.1f of %d</figcaption>%s</figure></div>"
               % (statistics.mean(totals), maximum, histogram("total", totals, maximum)))
    return out


def failed_checks(ordered: list[dict], failed: Counter, graded: int) -> list[str]:
    out = ["<h2>Checks, most failed first</h2>"]
    if not graded:
        return out + ["<p>No submission was graded.</p>"]
    header = ("<table><tr><th>check</th><th>title</th><th>points</th>"
              "<th>failed by</th></tr>")

    def line(c: dict) -> str:
        n = failed.get(c["number"], 0)
        return ('<tr><td>%s</td><td>%s</td><td class="num">%s</td>'
                '<td><span class="bar" style="width:%.1fem"></span> %d of %d</td></tr>'
                % (esc(c["number"]), esc(c["title"]), esc(c["max_score"]),
                   8.0 * n / graded, n, graded))

    # The checks someone failed are what to explain again; the others, folded away.
    someone = [c for c in ordered if failed.get(c["number"], 0)]
    nobody = [c for c in ordered if not failed.get(c["number"], 0)]
    if someone:
        out += [header, *map(line, someone), "</table>"]
    else:
        out.append("<p>Every graded student passed every check.</p>")
    if nobody:
        out += ['<details class="passed-by-all"><summary>%d check%s every graded student '
                'passed</summary>' % (len(nobody), "" if len(nobody) == 1 else "s"),
                header, *map(line, nobody), "</table></details>"]
    return out


def grid(rows: list[Row], ordered: list[dict]) -> list[str]:
    """One students × checks table per stage, so each fits a screen: in each, the stage's
    points and its checks, the checks most students failed first."""
    out = ["<h2>Students × checks</h2>"]
    if not ordered:
        return out + ["<p>No submission was graded.</p>"]
    out.append("<p>One table per stage. ✓ passed, ✗ failed, · not graded. Columns: the "
               "stage's checks, the ones most students failed first.</p>")
    stages = list(dict.fromkeys(c["stage"] for c in sorted(ordered, key=check_order)))
    for stage in stages:
        checks = [c for c in ordered if c["stage"] == stage]
        out.append('<h3>%s: %d checks, %d points</h3>'
                   % (esc(stage), len(checks), sum(c["max_score"] for c in checks)))
        out.append('<table class="grid" data-stage="%s"><tr>'
                   '<th class="name">student</th><th>points</th>' % esc(stage)
                   + "".join('<th class="check" title="%s">%s</th>'
                             % (esc(c["title"]), esc(c["number"])) for c in checks) + "</tr>")
        for row in rows:
            by_number = {t["number"]: t for t in row.tests()}
            cells = []
            for c in checks:
                t = by_number.get(c["number"])
                if t is None:
                    cells.append('<td class="none">·</td>')
                elif t["status"] == "passed":
                    cells.append('<td class="pass">✓</td>')
                else:
                    cells.append('<td class="fail" title="%s">✗</td>' % esc(c["title"]))
            points = ("%d/%d" % row.stage_points(stage) if row.status == "graded"
                      else row.status)
            out.append('<tr><td class="name" dir="auto">%s</td><td class="num">%s</td>%s</tr>'
                       % (esc(row.student), esc(points), "".join(cells)))
        out.append("</table>")
    return out


def student_table(rows: list[Row], stages: list[str]) -> list[str]:
    out = ["<h2>Students</h2>",
           "<table><tr><th>student</th>%s<th>total</th><th>status</th><th>seconds</th>"
           "<th>feedback</th></tr>" % "".join("<th>%s</th>" % esc(s) for s in stages)]
    for row in rows:
        stage_cells = "".join('<td class="num">%s</td>' % (
            "%d/%d" % row.stage_points(s) if row.status == "graded" else "0") for s in stages)
        link = urllib.parse.quote(row.folder) + "/feedback.txt"
        status_class = "status-" + row.status.split()[0]
        out.append('<tr><td dir="auto">%s</td>%s<td class="num">%s</td>'
                   '<td class="%s">%s</td><td class="num">%.1f</td>'
                   '<td><a href="%s">feedback.txt</a></td></tr>'
                   % (esc(row.student), stage_cells,
                      esc("%s/%s" % (row.total, row.max_score)) if row.status == "graded" else 0,
                      esc(status_class), esc(row.status), row.seconds, esc(link)))
    out.append("</table>")
    return out


def details(rows: list[Row], per_student: int = 3, length: int = 1500) -> list[str]:
    """Why each student lost points: the reason, or their first few failures (cut short)."""
    out = ["<h2>Details</h2>",
           "<p>For each student: why it was not graded, or their first %d failures "
           "(the whole story is in their feedback.txt).</p>" % per_student]
    for row in rows:
        failures = [t for t in row.tests() if t["status"] != "passed"]
        if row.status == "graded" and not failures:
            continue
        out.append('<h3 dir="auto">%s: %s</h3>'
                   % (esc(row.student), esc(describe_row(row))))
        if row.status != "graded":
            out.append("<pre>%s</pre>" % esc(cut(row.reason, length)))
            continue
        # A check blocked by an earlier failure says only that: show the failures themselves.
        blocked = [t for t in failures if t.get("output", "").startswith("Blocked by check")]
        shown = [t for t in failures if t not in blocked][:per_student]
        for t in shown:
            out.append("<p><b>%s</b></p><pre>%s</pre>" % (esc(t["name"]),
                                                         esc(cut(t.get("output", ""), length))))
        rest = len(failures) - len(shown)
        if rest:
            out.append("<p>… and %d more failed checks (%d of them blocked by an earlier "
                       "failure).</p>" % (rest, len(blocked)))
    return out


def cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length] + "\n[… cut here; see feedback.txt]"
