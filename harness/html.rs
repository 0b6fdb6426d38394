//! Pages people look at: one self-contained HTML page per run (an SVG timeline, a histogram for
//! a pool, the expectations) and an index; for a comparison, measured against predicted per
//! cell. Pure functions over records; no network, no external scripts, styles or fonts (the
//! pages forbid them with a Content-Security-Policy).
//!
//! Each page carries a small inline script that counts what the SVG shows and writes the result
//! into `<body data-check=...>`, so a headless browser's DOM dump proves the page loaded, the
//! script ran and the drawing has its lanes and markers.

use std::fmt::Write;
use std::path::Path;

use crate::compare::Results;
use crate::record::{Event, Kind, Record, Source};
use crate::scenario::Side;

/// Escapes text for HTML and SVG (content and attribute values).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
.pass{color:#17803d}.fail{color:#c0262d}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
code{font:12px ui-monospace,monospace}\
svg text{font:12px system-ui,sans-serif;fill:#333}\
.lane-line{stroke:#bbb;stroke-width:1}.axis{stroke:#888}\
.fault{fill:#c0262d;fill-opacity:.18;stroke:#c0262d}\
.window{fill:#2563eb;fill-opacity:.16;stroke:#2563eb;stroke-dasharray:3 2}\
.detection{fill:#c0262d;stroke:#fff}.connected{fill:#17803d}\
.attempt{stroke:#d97706;stroke-width:1.5}.reconnect{fill:#17803d;stroke:#fff}\
.bar{fill:#2563eb}.measured{fill:#c0262d}svg{max-width:100%;height:auto;display:block}pre{overflow-x:auto}";

/// The script each page runs: counts lanes and markers, writes them to `data-check`.
const CHECK_SCRIPT: &str = "(function(){var s=document.querySelectorAll('svg.timeline');\
var n=function(q){return document.querySelectorAll(q).length};\
var lanes=[];document.querySelectorAll('svg.timeline [data-lane]').forEach(function(e){\
if(lanes.indexOf(e.dataset.lane)<0)lanes.push(e.dataset.lane)});\
document.body.dataset.check=JSON.stringify({ok:true,timelines:s.length,lanes:lanes,\
faults:n('svg .fault'),windows:n('svg .window'),detections:n('svg .detection'),\
reconnects:n('svg .reconnect'),attempts:n('svg .attempt'),histograms:n('svg.histogram'),\
bars:n('svg .bar'),cells:n('svg .cell')});})();";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
<title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}\n<script>{CHECK_SCRIPT}</script>\n</body></html>\n",
        esc(title)
    )
}

fn secs(ms: f64) -> String {
    if ms.abs() < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.3} s", ms / 1000.0)
    }
}

/// A tick's label: whole units where the step allows ("5 s", "250 ms", "1.5 s").
fn tick(t: f64, step: f64) -> String {
    if step >= 1000.0 {
        let s = t / 1000.0;
        let decimals = if step % 1000.0 == 0.0 { 0 } else { 1 };
        format!("{s:.decimals$} s")
    } else {
        let decimals = if step >= 1.0 { 0 } else { 1 };
        format!("{t:.decimals$} ms")
    }
}

/// A horizontal scale from [0, span] ms onto [left, left + width] px.
#[derive(Clone, Copy)]
struct Scale {
    /// The time at the left edge, ms.
    origin: f64,
    span: f64,
    left: f64,
    width: f64,
}

impl Scale {
    fn x(&self, ms: f64) -> f64 {
        self.left + ((ms - self.origin).clamp(0.0, self.span) / self.span) * self.width
    }

    /// A round tick step giving at most about one tick per 100 px.
    fn step(&self) -> f64 {
        let raw = self.span / (self.width / 100.0).floor().max(2.0);
        let mag = 10f64.powf(raw.max(1e-3).log10().floor());
        [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag)
    }
}

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 70.0;
const LANES: [(&str, f64); 3] = [("client", 40.0), ("wire", 100.0), ("server", 160.0)];
const HEIGHT: f64 = 240.0;

fn lane_y(side: Side) -> f64 {
    match side {
        Side::Client => LANES[0].1,
        Side::Server => LANES[2].1,
    }
}

fn axis(out: &mut String, sc: Scale, y: f64) {
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{:.1}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\"/>",
        sc.left,
        sc.left + sc.width
    );
    let step = sc.step();
    let mut t = (sc.origin / step).ceil() * step;
    while t <= sc.origin + sc.span + 1e-9 {
        let x = sc.x(t);
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{y}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y + 4.0,
            y + 18.0,
            esc(&tick(t, step))
        );
        t += step;
    }
}

/// The run's length on the timeline: to the lab going down, or the scenario's end.
fn span_ms(r: &Record) -> f64 {
    let last = r.events.iter().map(|e| e.t_ms).fold(0.0, f64::max);
    let end = r.scenario.end.0.as_secs_f64() * 1000.0;
    last.max(end).max(1.0)
}

fn marker_title(what: &str, at: f64, detail: &str) -> String {
    format!(
        "<title>{}</title>",
        esc(&format!("{what} at {}{detail}", secs(at)))
    )
}

/// The SVG timeline of one run: lanes client / wire / server, each fault's span, each side's
/// predicted window and detection, connections and reconnect attempts.
pub fn timeline(r: &Record) -> String {
    let sc = Scale {
        origin: 0.0,
        span: span_ms(r),
        left: LEFT,
        width: WIDTH - LEFT - 20.0,
    };
    let mut s = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">"
    );
    for (name, y) in LANES {
        let _ = write!(
            s,
            "<g data-lane=\"{name}\"><text x=\"8\" y=\"{:.1}\">{name}</text>\
<line class=\"lane-line\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\"/></g>",
            y + 4.0,
            WIDTH - 20.0
        );
    }
    for (i, f) in r.summary.faults.iter().enumerate() {
        let Some(inj) = f.injected_at_ms else {
            continue;
        };
        let healed = f.healed_at_ms.unwrap_or(sc.span);
        let (x0, x1) = (sc.x(inj), sc.x(healed));
        let _ = write!(
            s,
            "<rect class=\"fault\" data-lane=\"wire\" x=\"{x0:.1}\" y=\"88\" width=\"{:.1}\" height=\"24\">\
<title>{}</title></rect><text x=\"{:.1}\" y=\"84\">{}</text>",
            (x1 - x0).max(1.5),
            esc(&format!(
                "fault {} [{}] from {} to {}",
                f.id,
                f.kind.as_str(),
                secs(inj),
                f.healed_at_ms.map_or("the end".into(), secs)
            )),
            x0 + 2.0,
            esc(&f.id)
        );
        for side in Side::BOTH {
            let y = lane_y(side);
            let p = crate::model::predict(&r.scenario, i, side);
            if let Some((lo, hi)) = p.window_ms {
                let (w0, w1) = (sc.x(inj + lo), sc.x(inj + hi));
                let _ = write!(
                    s,
                    "<rect class=\"window\" data-lane=\"{side}\" x=\"{w0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"20\">\
<title>{}</title></rect>",
                    y - 10.0,
                    (w1 - w0).max(1.5),
                    esc(&format!(
                        "{side}: predicted {} after the fault ({})",
                        p.window_text(),
                        p.mechanism
                    ))
                );
            }
            let summary = match side {
                Side::Client => &f.client,
                Side::Server => &f.server,
            };
            if let Some(d) = summary.detection_ms {
                let label_y = match side {
                    Side::Client => y - 14.0,
                    Side::Server => y + 24.0,
                };
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{label_y}\" text-anchor=\"middle\">{}</text>",
                    sc.x(inj + d),
                    esc(&format!(
                        "+{} {}",
                        secs(d),
                        summary.error.as_deref().unwrap_or("")
                    ))
                );
                let _ = write!(
                    s,
                    "<circle class=\"detection\" data-lane=\"{side}\" cx=\"{:.1}\" cy=\"{y}\" r=\"6\">{}</circle>",
                    sc.x(inj + d),
                    marker_title(
                        &format!("{side} detected"),
                        inj + d,
                        &format!(
                            ", {} after the fault, {}",
                            secs(d),
                            summary.error.as_deref().unwrap_or("")
                        )
                    )
                );
            }
        }
    }
    events_on_lanes(&mut s, sc, &r.events);
    axis(&mut s, sc, HEIGHT - 25.0);
    s.push_str("</svg>");
    s
}

/// Connections, reconnect attempts and reconnections as small marks on their side's lane.
fn events_on_lanes(s: &mut String, sc: Scale, events: &[Event]) {
    for e in events {
        let Some(side) = e.source.side() else {
            continue;
        };
        let (x, y) = (sc.x(e.t_ms), lane_y(side));
        match &e.kind {
            Kind::Connected(_) => {
                let _ = write!(
                    s,
                    "<circle class=\"connected\" data-lane=\"{side}\" cx=\"{x:.1}\" cy=\"{y}\" r=\"3\">{}</circle>",
                    marker_title("connected", e.t_ms, "")
                );
            }
            Kind::ReconnectAttempt { attempt, .. } => {
                let _ = write!(
                    s,
                    "<line class=\"attempt\" data-lane=\"{side}\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\">{}</line>",
                    y - 12.0,
                    y - 4.0,
                    marker_title(&format!("reconnect attempt {attempt}"), e.t_ms, "")
                );
            }
            Kind::Reconnected(_) => {
                let _ = write!(
                    s,
                    "<path class=\"reconnect\" data-lane=\"{side}\" d=\"M{:.1},{:.1} l6,10 h-12 z\">{}</path>",
                    x,
                    y - 4.0,
                    marker_title("connected again", e.t_ms, "")
                );
            }
            _ => {}
        }
    }
}

/// Detection latencies of every connection of a side for fault `f` (ms after injection).
fn latencies(r: &Record, side: Side, inj: f64, healed: Option<f64>) -> Vec<f64> {
    r.events
        .iter()
        .filter(|e| e.source == Source::from(side) && e.t_ms >= inj)
        .filter(|e| healed.is_none_or(|h| e.t_ms <= h))
        .filter(|e| matches!(e.kind, Kind::PeerLost(_)))
        .map(|e| e.t_ms - inj)
        .collect()
}

/// A histogram of detection times, for a side with more than one connection: 20 bins from the
/// first to the last (at least 100 ms wide in all).
pub fn histogram(title: &str, values: &[f64]) -> String {
    let (w, h, left, bins) = (600.0, 180.0, 50.0, 20usize);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if max - min < 100.0 {
        let mid = (min + max) / 2.0;
        ((mid - 50.0).max(0.0), (mid - 50.0).max(0.0) + 100.0)
    } else {
        (min, max)
    };
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in values {
        let i = ((v - lo) / width).floor().max(0.0) as usize;
        counts[i.min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let plot = w - left - 40.0;
    let bw = plot / bins as f64;
    let mut s = format!(
        "<svg class=\"histogram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
<text x=\"{left}\" y=\"14\">{}</text>",
        esc(title)
    );
    for (i, c) in counts.iter().enumerate() {
        let bh = (*c as f64 / top) * (h - 60.0);
        let from = lo + width * i as f64;
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{}</title></rect>",
            left + i as f64 * bw,
            h - 30.0 - bh,
            (bw - 1.0).max(1.0),
            esc(&format!("{c} connections detected {}..{}", secs(from), secs(from + width)))
        );
    }
    let sc = Scale {
        origin: lo,
        span: hi - lo,
        left,
        width: plot,
    };
    axis(&mut s, sc, h - 30.0);
    let _ = write!(s, "<text x=\"8\" y=\"34\">{top}</text>");
    s.push_str("</svg>");
    s
}

fn expectations_table(r: &Record) -> String {
    let mut s =
        String::from("<table><tr><th></th><th>expected</th><th>actual</th><th>why</th></tr>");
    for o in &r.verdict.expectations {
        let (class, mark) = if o.passed {
            ("pass", "PASS")
        } else {
            ("fail", "FAIL")
        };
        let _ = write!(
            s,
            "<tr><td class=\"{class}\">{mark}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&o.expected),
            esc(&o.actual),
            esc(&o.reason)
        );
    }
    s.push_str("</table>");
    s
}

/// One run's page: verdict, the run's summary as `flatline run` prints it, the timeline, a
/// histogram per side and fault when the side had more than one connection, the expectations.
pub fn run_page(r: &Record, record_path: &str) -> String {
    let passed = crate::report::passed(r);
    let mut b = format!(
        "<h1><span class=\"{}\">{}</span> {}</h1><p><code>{}</code> · kernel {} · flatline {} · {}</p>",
        if passed { "pass" } else { "fail" },
        if passed { "PASS" } else { "FAIL" },
        esc(&r.scenario.name),
        esc(&r.scenario.file.display().to_string()),
        esc(&r.environment.kernel),
        esc(&r.environment.flatline_version),
        esc(&r.environment.run_date)
    );
    if !r.scenario.description.is_empty() {
        let _ = write!(b, "<p>{}</p>", esc(&r.scenario.description));
    }
    b += "<h2>Timeline</h2>";
    b += &timeline(r);
    b += "<p>Red band: the fault. Blue band: the model's predicted window for that side. \
Red dot: the side noticed. Green dot: connected; green triangle: connected again; orange tick: a reconnect attempt. \
Hover for times.</p>";
    for f in &r.summary.faults {
        let Some(inj) = f.injected_at_ms else {
            continue;
        };
        for side in Side::BOTH {
            let l = latencies(r, side, inj, f.healed_at_ms);
            if l.len() > 1 {
                b += &histogram(
                    &format!(
                        "{side}: {} connections noticed fault {} (ms after it)",
                        l.len(),
                        f.id
                    ),
                    &l,
                );
            }
        }
    }
    b += "<h2>Expectations</h2>";
    b += &expectations_table(r);
    let _ = write!(
        b,
        "<h2>Summary</h2><pre>{}</pre>",
        esc(&crate::report::render(r, record_path))
    );
    page(&format!("flatline: {}", r.scenario.name), &b)
}

/// The index: one row per run, linking its page.
pub fn index_page(title: &str, runs: &[(&Record, String)]) -> String {
    let mut b = format!(
        "<h1>{}</h1><table><tr><th></th><th>scenario</th><th>expectations</th></tr>",
        esc(title)
    );
    let passed = runs
        .iter()
        .filter(|(r, _)| crate::report::passed(r))
        .count();
    for (r, page) in runs {
        let ok = crate::report::passed(r);
        let n = r.verdict.expectations.len();
        let held = r.verdict.expectations.iter().filter(|o| o.passed).count();
        let _ = write!(
            b,
            "<tr><td class=\"{}\">{}</td><td><a href=\"{}\">{}</a></td><td>{held}/{n} held</td></tr>",
            if ok { "pass" } else { "fail" },
            if ok { "PASS" } else { "FAIL" },
            esc(page),
            esc(&r.scenario.name)
        );
    }
    let _ = write!(
        b,
        "</table><p>{passed} passed, {} failed</p>",
        runs.len() - passed
    );
    page(title, &b)
}

/// A comparison's chart: per cell and side, the predicted window as a band and the
/// measurement as a dot, on one time axis per fault.
pub fn comparison_page(r: &Results) -> String {
    let mut b = format!("<h1>{}</h1><p>{}</p>", esc(&r.name), esc(&r.description));
    let mut faults: Vec<&str> = r.cells.iter().map(|c| c.fault.as_str()).collect();
    faults.dedup();
    for fault in faults {
        let cells: Vec<_> = r.cells.iter().filter(|c| c.fault == fault).collect();
        let span = cells
            .iter()
            .flat_map(|c| [&c.client, &c.server])
            .flat_map(|s| [s.measured_ms, s.predicted_ms.map(|w| w.1)])
            .flatten()
            .fold(1.0, f64::max)
            * 1.05;
        let sc = Scale {
            origin: 0.0,
            span,
            left: 260.0,
            width: WIDTH - 280.0,
        };
        let rows = cells.len() * 2;
        let h = 30.0 + rows as f64 * 22.0 + 30.0;
        let _ = write!(
            b,
            "<h2>{}</h2><svg class=\"comparison\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" viewBox=\"0 0 {WIDTH} {h}\">",
            esc(fault)
        );
        for (i, c) in cells.iter().enumerate() {
            for (j, (side, res)) in [("client", &c.client), ("server", &c.server)]
                .into_iter()
                .enumerate()
            {
                let y = 30.0 + (i * 2 + j) as f64 * 22.0;
                let _ = write!(
                    b,
                    "<g class=\"cell\"><text x=\"8\" y=\"{:.1}\">{}</text>",
                    y + 4.0,
                    esc(&format!("{} · {side}", c.settings))
                );
                if let Some((lo, hi)) = res.predicted_ms {
                    let _ = write!(
                        b,
                        "<rect class=\"window\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\"><title>predicted {}</title></rect>",
                        sc.x(lo),
                        y - 7.0,
                        (sc.x(hi) - sc.x(lo)).max(1.5),
                        esc(&res.predicted)
                    );
                }
                if let Some(m) = res.measured_ms {
                    let _ = write!(
                        b,
                        "<circle class=\"measured\" cx=\"{:.1}\" cy=\"{y}\" r=\"5\"><title>measured {}{}</title></circle>",
                        sc.x(m),
                        esc(&secs(m)),
                        if res.as_predicted == Some(false) {
                            ", outside the predicted window"
                        } else {
                            ""
                        }
                    );
                }
                b.push_str("</g>");
            }
        }
        axis(&mut b, sc, h - 25.0);
        b.push_str("</svg>");
        if let Some(control) = &r.control {
            versus_table(&mut b, control, &cells);
        }
    }
    b += "<p>Blue band: predicted window after the fault. Red dot: measured.</p>";
    let _ = write!(b, "<pre>{}</pre>", esc(&crate::compare::render_text(r)));
    page(&format!("flatline: {}", r.name), &b)
}

/// Under a fault's chart: each row's standing against the control, per side.
fn versus_table(b: &mut String, control: &str, cells: &[&crate::compare::CellResult]) {
    let _ = write!(
        b,
        "<table class=\"versus\"><tr><th>settings</th><th>client vs control</th><th>server vs control</th></tr>"
    );
    for c in cells {
        let _ = write!(b, "<tr><td>{}</td>", esc(&c.settings));
        for s in [&c.client, &c.server] {
            match &s.versus_control {
                Some(v) => {
                    let _ = write!(
                        b,
                        "<td data-standing=\"{}\">{}</td>",
                        v.standing.as_str(),
                        esc(&v.text())
                    );
                }
                None if c.settings == control => {
                    b.push_str("<td data-standing=\"control\">(control)</td>")
                }
                None => b.push_str("<td></td>"),
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
}

/// A page's file name for a run: its scenario name (names are checked to be safe).
pub fn page_name(r: &Record) -> String {
    format!("{}.html", r.scenario.name)
}

/// Writes one page per run and `index.html` into `dir` (created if needed), atomically.
pub fn write_runs(dir: &Path, runs: &[(String, Record)]) -> Result<(), crate::output::OutputError> {
    crate::output::check_writable(dir)?;
    let mut index = Vec::new();
    for (path, r) in runs {
        let name = page_name(r);
        crate::output::write_atomically(&dir.join(&name), run_page(r, path).as_bytes())?;
        index.push((r, name));
    }
    crate::output::write_atomically(
        &dir.join("index.html"),
        index_page("flatline runs", &index).as_bytes(),
    )
}

/// Writes a comparison's page into `dir` as `<name>.html` and `index.html`.
pub fn write_comparison(dir: &Path, r: &Results) -> Result<(), crate::output::OutputError> {
    crate::output::check_writable(dir)?;
    let page = comparison_page(r);
    crate::output::write_atomically(&dir.join(format!("{}.html", r.name)), page.as_bytes())?;
    crate::output::write_atomically(&dir.join("index.html"), page.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunStatus;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_run_page_has_lanes_a_fault_windows_and_detections() {
        let r = crate::report::tests::record(RunStatus::Completed);
        let html = run_page(&r, "results/t.json");
        let svg = timeline(&r);
        for lane in ["client", "wire", "server"] {
            assert!(svg.contains(&format!("data-lane=\"{lane}\"")), "{lane}");
        }
        assert_eq!(
            svg.matches("class=\"fault\"").count(),
            r.summary.faults.len()
        );
        let detections = r
            .summary
            .faults
            .iter()
            .flat_map(|f| [&f.client, &f.server])
            .filter(|s| s.detection_ms.is_some())
            .count();
        assert!(detections > 0);
        assert_eq!(svg.matches("class=\"detection\"").count(), detections);
        let windows = (0..r.summary.faults.len())
            .flat_map(|i| Side::BOTH.map(|side| crate::model::predict(&r.scenario, i, side)))
            .filter(|p| p.window_ms.is_some())
            .count();
        assert_eq!(svg.matches("class=\"window\"").count(), windows);
        assert!(html.contains("Content-Security-Policy"));
        let external = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!external.contains("http://") && !external.contains("https://"));
    }

    #[test]
    fn the_histogram_counts_every_value() {
        let values: Vec<f64> = (0..100).map(|i| 3000.0 + f64::from(i)).collect();
        let svg = histogram("h", &values);
        let total: usize = svg
            .split("<title>")
            .skip(1)
            .filter_map(|t| t.split(' ').next()?.parse::<usize>().ok())
            .sum();
        assert_eq!(total, 100);
    }

    #[test]
    fn scales_clamp_and_step_round() {
        let sc = Scale {
            origin: 0.0,
            span: 30_000.0,
            left: 10.0,
            width: 1000.0,
        };
        assert_eq!(sc.x(-5.0), 10.0);
        assert_eq!(sc.x(60_000.0), 1010.0);
        assert_eq!(sc.step(), 5000.0);
        assert_eq!(tick(15_000.0, 5000.0), "15 s");
        assert_eq!(tick(1_500.0, 500.0), "1500 ms");
        assert_eq!(tick(2_500.0, 2500.0), "2.5 s");
    }

    #[test]
    fn a_comparison_page_draws_every_cell_and_side() {
        use crate::compare::{CellResult, Results, SideResult};
        let side = |m: Option<f64>| SideResult {
            measured_ms: m,
            error: None,
            mechanism: None,
            predicted: "3s..4s".into(),
            predicted_ms: Some((3000.0, 4000.0)),
            predicted_error: None,
            as_predicted: m.map(|m| (3000.0..=4000.0).contains(&m)),
            versus_control: None,
        };
        let cell = |fault: &str, settings: &str, m| CellResult {
            fault: fault.into(),
            settings: settings.into(),
            ran: true,
            client: side(m),
            server: side(None),
            run_ms: Some(5000.0),
            pool: None,
            record: None,
        };
        let r = Results {
            name: "m<x>".into(),
            description: String::new(),
            control: None,
            cells: vec![
                cell("cable-pull", "a", Some(3500.0)),
                cell("cable-pull", "b", Some(5000.0)),
                cell("freeze", "a", None),
            ],
            wall_ms: 5100.0,
        };
        let html = comparison_page(&r);
        assert_eq!(html.matches("<g class=\"cell\">").count(), 6);
        assert_eq!(html.matches("class=\"window\"").count(), 6);
        assert_eq!(html.matches("class=\"measured\"").count(), 2);
        assert_eq!(
            html.matches(", outside the predicted window</title>")
                .count(),
            1
        );
        assert_eq!(html.matches("<svg class=\"comparison\"").count(), 2);
        assert!(html.contains("m&lt;x&gt;") && !html.contains("m<x>"));
    }
}
