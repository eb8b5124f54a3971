//! Nagios plugin output: the first line is the status text, and everything
//! after a `|` (on the first line, then on the first later line that has one,
//! to the end) is performance data:
//! `label=value[UOM];[warn];[crit];[min];[max]`, space separated, labels
//! optionally in single quotes (`''` for a quote). See the Nagios plugin
//! development guidelines. Malformed items are skipped, never fatal.

#[derive(Clone, Debug, PartialEq)]
pub struct PerfDatum {
    pub label: String,
    /// `None` for `U` (the plugin could not measure it).
    pub value: Option<f64>,
    pub uom: String,
    /// Thresholds as numbers, when they are plain numbers (a range like
    /// `10:20` or `@5` is kept only as text in the message).
    pub warn: Option<f64>,
    pub crit: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The status text (first line, before `|`) and the performance data.
pub fn parse(output: &str) -> (String, Vec<PerfDatum>) {
    let mut lines = output.lines();
    let first = lines.next().unwrap_or("");
    let (text, mut perf) = match first.split_once('|') {
        Some((t, p)) => (t, p.to_string()),
        None => (first, String::new()),
    };
    // Long text: the first later line with a `|` starts more perfdata,
    // which runs to the end of the output.
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf.push(' ');
            perf.push_str(line);
        } else if let Some((_, p)) = line.split_once('|') {
            in_perf = true;
            perf.push(' ');
            perf.push_str(p);
        }
    }
    (text.trim().to_string(), items(&perf))
}

fn items(perf: &str) -> Vec<PerfDatum> {
    let mut out = Vec::new();
    let mut rest = perf.trim_start();
    while !rest.is_empty() {
        let (label, after) = match label(rest) {
            Some(x) => x,
            None => {
                // Skip one malformed token.
                rest = rest
                    .find(char::is_whitespace)
                    .map_or("", |i| rest[i..].trim_start());
                continue;
            }
        };
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        if let Some(d) = datum(label, &after[..end]) {
            out.push(d);
        }
        rest = after[end..].trim_start();
    }
    out
}

/// `'a b'=` or `a=`: the label and what follows the `=`.
fn label(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.strip_prefix('\'') {
        let mut label = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if q[i + 1..].starts_with('\'') {
                    label.push('\'');
                    chars.next();
                    continue;
                }
                let after = q[i + 1..].strip_prefix('=')?;
                return (!label.is_empty()).then_some((label, after));
            }
            label.push(c);
        }
        None
    } else {
        let eq = s.find('=')?;
        let label = &s[..eq];
        if label.is_empty() || label.contains(char::is_whitespace) {
            return None;
        }
        Some((label.to_string(), &s[eq + 1..]))
    }
}

fn datum(label: String, spec: &str) -> Option<PerfDatum> {
    let mut parts = spec.split(';');
    let v = parts.next()?;
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(v.len());
    let (num, uom) = v.split_at(split);
    let value = if v == "U" {
        None
    } else {
        Some(num.parse::<f64>().ok().filter(|f| f.is_finite())?)
    };
    let uom = if v == "U" { "" } else { uom };
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|f| f.is_finite())
    };
    let (warn, crit, min, max) = (next(), next(), next(), next());
    Some(PerfDatum {
        label,
        value,
        uom: uom.to_string(),
        warn,
        crit,
        min,
        max,
    })
}

/// One item in plugin form: `'label'=value[UOM];[warn];[crit];[min];[max]`
/// (the label quoted when it needs it, trailing empty fields dropped).
pub fn render(label: &str, d: &PerfDatum) -> String {
    let num = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    let label = if label.contains([' ', '=', '\'']) {
        format!("'{}'", label.replace('\'', "''"))
    } else {
        label.to_string()
    };
    let mut fields = vec![
        d.value.map_or("U".to_string(), |v| format!("{v}{}", d.uom)),
        num(d.warn),
        num(d.crit),
        num(d.min),
        num(d.max),
    ];
    while fields.len() > 1 && fields.last().is_some_and(String::is_empty) {
        fields.pop();
    }
    format!("{label}={}", fields.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(label: &str, value: Option<f64>, uom: &str) -> PerfDatum {
        PerfDatum {
            label: label.into(),
            value,
            uom: uom.into(),
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    #[test]
    fn first_line_text_and_perfdata() {
        let (text, perf) =
            parse("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n");
        assert_eq!(text, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(
            perf,
            vec![PerfDatum {
                warn: Some(5948.0),
                crit: Some(5958.0),
                min: Some(0.0),
                max: Some(5968.0),
                ..d("/", Some(2643.0), "MB")
            }]
        );
    }

    #[test]
    fn quoted_labels_units_unknowns_and_ranges() {
        let (_, perf) =
            parse("OK | 'in use'=44%;80;90 time=0.000123s;;;0.0;10.0 x=U 'it''s'=3c a=5;10:20;@30");
        assert_eq!(perf.len(), 5, "{perf:?}");
        assert_eq!(
            (perf[0].label.as_str(), perf[0].uom.as_str()),
            ("in use", "%")
        );
        assert_eq!(perf[1].value, Some(0.000123));
        assert_eq!(perf[1].max, Some(10.0));
        assert_eq!(perf[2], d("x", None, ""));
        assert_eq!(perf[3].label, "it's");
        assert_eq!((perf[4].warn, perf[4].crit), (None, None));
    }

    #[test]
    fn long_text_perfdata_and_garbage() {
        let out = "WARN - 2 of 3 | a=1\nline two\nline three | b=2\nc=3;4\n";
        let (text, perf) = parse(out);
        assert_eq!(text, "WARN - 2 of 3");
        let labels: Vec<_> = perf.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["a", "b", "c"]);
        assert!(parse("x | =1 a b=? 'open c=NaN d=inf e=2")
            .1
            .iter()
            .all(|p| p.label == "e"));
        assert_eq!(parse("").0, "");
        assert!(parse("only text").1.is_empty());
    }
}
