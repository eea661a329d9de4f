//! SVG line charts of a metric, drawn by the server (the console shows them as images).

/// Escapes text for XML.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound and tick step for values up to `max`.
pub(crate) fn nice_scale(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn number(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x.abs() >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// How values of `unit` are shown on the axis, given the largest: KiB (memory) in KiB, MiB or
/// GiB, whichever reads best, as (the unit shown, the divisor); other units as they are.
fn shown_unit(unit: &str, max: f64) -> (&str, f64) {
    const KIB_PER_MIB: f64 = 1024.0;
    const KIB_PER_GIB: f64 = 1024.0 * 1024.0;
    match unit {
        "KiB" if max >= KIB_PER_GIB => ("GiB", KIB_PER_GIB),
        "KiB" if max >= KIB_PER_MIB => ("MiB", KIB_PER_MIB),
        _ => (unit, 1.0),
    }
}

/// A tick's label: the value, and a memory unit after it (a count or a load needs none).
fn tick(v: f64, unit: &str) -> String {
    match unit {
        "KiB" | "MiB" | "GiB" => format!("{} {unit}", number(v)),
        _ => number(v),
    }
}

/// A line chart of `points` (Unix seconds, value) between `from` and `to`: title, y axis with
/// its unit and ticks, x axis with UTC times, gaps where samples are missing.
pub fn render_chart(
    title: &str,
    unit: &str,
    from: i64,
    to: i64,
    step: i64,
    points: &[(i64, f64)],
) -> String {
    const W: f64 = 640.0;
    const H: f64 = 260.0;
    const L: f64 = 64.0;
    const R: f64 = 16.0;
    const T: f64 = 36.0;
    const B: f64 = 40.0;
    let (pw, ph) = (W - L - R, H - T - B);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let (unit, per) = shown_unit(unit, max);
    let points: Vec<(i64, f64)> = points.iter().map(|(t, v)| (*t, v / per)).collect();
    let max = max / per;
    let (top, ystep) = if unit == "Percent" {
        (100.0, 25.0)
    } else {
        nice_scale(max)
    };
    let span = (to - from).max(1) as f64;
    let x = |t: i64| L + (t - from) as f64 / span * pw;
    let y = |v: f64| T + ph - (v.clamp(0.0, top) / top) * ph;
    let mut out = String::new();
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    ));
    out.push_str(&format!("<title>{}</title>\n", xml(title)));
    out.push_str(&format!(
        "<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\n"
    ));
    out.push_str(&format!(
        "<text x=\"{L}\" y=\"20\" font-size=\"13\" font-weight=\"bold\" fill=\"#222\">{}</text>\n",
        xml(title)
    ));
    // Y grid and ticks.
    let mut v = 0.0;
    while v <= top + ystep / 2.0 {
        let yy = y(v);
        out.push_str(&format!(
            "<line x1=\"{L}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e5e5\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n",
            L + pw,
            L - 6.0,
            yy + 4.0,
            tick(v, unit)
        ));
        v += ystep;
    }
    out.push_str(&format!(
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n",
        T + ph / 2.0,
        T + ph / 2.0,
        xml(unit)
    ));
    // X ticks: 6 intervals, labelled in UTC.
    for k in 0..=6 {
        let t = from + (to - from) * k / 6;
        let xx = x(t);
        let label = jiff::Timestamp::from_second(t)
            .map(|ts| {
                if to - from > 2 * 24 * 3600 {
                    ts.strftime("%m-%d %H:%M").to_string()
                } else {
                    ts.strftime("%H:%M").to_string()
                }
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\n<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{label}</text>\n",
            T + ph,
            T + ph + 4.0,
            T + ph + 16.0
        ));
    }
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#888\">UTC</text>\n",
        L + pw,
        H - 6.0
    ));
    // Axes.
    out.push_str(&format!(
        "<path d=\"M{L} {T} V{:.1} H{:.1}\" fill=\"none\" stroke=\"#333\"/>\n",
        T + ph,
        L + pw
    ));
    if points.is_empty() {
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\" font-size=\"13\">No data</text>\n",
            L + pw / 2.0,
            T + ph / 2.0
        ));
    } else {
        // A new segment wherever samples are missing for more than two steps.
        let mut d = String::new();
        let mut last: Option<i64> = None;
        for (t, v) in &points {
            let cmd = match last {
                Some(l) if t - l <= 2 * step => 'L',
                _ => 'M',
            };
            d.push_str(&format!("{cmd}{:.1} {:.1} ", x(*t), y(*v)));
            last = Some(*t);
        }
        out.push_str(&format!(
            "<path d=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" stroke-linejoin=\"round\"/>\n",
            d.trim_end()
        ));
    }
    out.push_str("</svg>\n");
    out
}
