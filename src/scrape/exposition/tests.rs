//! Tests of both parsers against Prometheus' behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::gocompat::strconv::NORMAL_NAN_BITS;

/// Renders every entry of `body` in a compact form, or the error.
fn run(format: Format, body: &[u8]) -> Result<Vec<String>, String> {
    let mut p = Parser::new(body, format);
    let mut out = Vec::new();
    loop {
        match p.next() {
            Ok(None) => break,
            Ok(Some(e)) => out.push(render(&e).map_err(|e| e.to_string())?),
            Err(e) => return Err(e.to_string()),
        }
    }
    // Finished parsers stay finished.
    assert_eq!(p.next(), Ok(None));
    Ok(out)
}

fn render_labels(labels: &[Label<'_>]) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn render(e: &Entry<'_>) -> Result<String, ParseError> {
    Ok(match e {
        Entry::Help { metric, text } => format!("HELP {metric} {text:?}"),
        Entry::Type { metric, kind } => format!("TYPE {metric} {kind}"),
        Entry::Unit { metric, unit } => format!("UNIT {metric} {unit}"),
        Entry::Sample(s) => {
            let mut r = format!(
                "{}{} {}",
                s.name,
                render_labels(&s.labels()?),
                format_float(s.value, 'g', -1)
            );
            if let Some(t) = s.timestamp_ms {
                r.push_str(&format!(" @{t}"));
            }
            if let Some(x) = &s.exemplar {
                r.push_str(&format!(
                    " # {} {}",
                    render_labels(&x.labels),
                    format_float(x.value, 'g', -1)
                ));
                if let Some(t) = x.timestamp_ms {
                    r.push_str(&format!(" @{t}"));
                }
            }
            if s.created {
                r.push_str(" created");
            }
            r
        }
    })
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn text(body: &str) -> Result<Vec<String>, String> {
    run(Format::PrometheusText, body.as_bytes())
}

fn om(body: &str) -> Result<Vec<String>, String> {
    run(Format::OpenMetrics, body.as_bytes())
}

fn samples(format: Format, body: &[u8]) -> Vec<Sample<'_>> {
    let mut p = Parser::new(body, format);
    let mut v = Vec::new();
    while let Some(e) = p.next().unwrap() {
        if let Entry::Sample(s) = e {
            v.push(s);
        }
    }
    v
}

#[test]
fn text_format_accepts_prometheus_grammar() {
    let cases: &[(&str, &[&str])] = &[
        ("a 1\n", &["a{} 1"]),
        ("a 1", &["a{} 1"]),
        ("a{b=\"c\",d=\"e\"} 1\n", &["a{b=\"c\",d=\"e\"} 1"]),
        ("a{b=\"c\",} 1", &["a{b=\"c\"} 1"]),
        ("a{} 1", &["a{} 1"]),
        ("a { b = \"c\" , d= \"e\" , } 1", &["a{b=\"c\",d=\"e\"} 1"]),
        ("a{b=\"c\" d=\"e\"} 1", &["a{b=\"c\",d=\"e\"} 1"]),
        ("a\t1\t123\n", &["a{} 1 @123"]),
        ("  a 1  \n", &["a{} 1"]),
        ("a 1 123  \n", &["a{} 1 @123"]),
        ("a{b=\"c\"}1", &["a{b=\"c\"} 1"]),
        // Prometheus' lexer takes anything after the name as the value.
        ("a-1", &["a{} -1"]),
        (
            "some:aggregate:rate5m{a_b=\"c\"} 1",
            &["some:aggregate:rate5m{a_b=\"c\"} 1"],
        ),
        ("_under{_l=\"x\"} 1", &["_under{_l=\"x\"} 1"]),
        ("\n\n  \t\n a 1\n\n", &["a{} 1"]),
        (
            "# a comment\n#another\n#\n# HELPER x\n# TYPEx y\na 1",
            &["a{} 1"],
        ),
        ("# λ comment\na 1", &["a{} 1"]),
    ];
    for (input, want) in cases {
        assert_eq!(text(input), Ok(owned(want)), "input {input:?}");
    }
}

#[test]
fn text_format_metadata() {
    let cases: &[(&str, &[&str])] = &[
        ("# HELP a Some help.\n", &["HELP a \"Some help.\""]),
        ("#\tHELP\ta\thelp text\n", &["HELP a \"help text\""]),
        ("# HELP a\n", &["HELP a \"\""]),
        ("# HELP a \n", &["HELP a \"\""]),
        ("# HELP a   \n", &["HELP a \"\""]),
        ("# HELP a  two\n", &["HELP a \" two\""]),
        (
            "# HELP a x\\ny \\\\ \\\" \\t\n",
            &["HELP a \"x\\ny \\\\ \\\\\\\" \\\\t\""],
        ),
        ("# HELP a foo\0bar\n", &["HELP a \"foo\\0bar\""]),
        ("# TYPE a counter\n", &["TYPE a counter"]),
        ("# TYPE a gauge\n", &["TYPE a gauge"]),
        ("# TYPE a histogram\n", &["TYPE a histogram"]),
        ("# TYPE a summary\n", &["TYPE a summary"]),
        ("# TYPE a untyped\n", &["TYPE a unknown"]),
        ("# TYPE\ta\tcounter", &["TYPE a counter"]),
        ("# TYPE \"my.metric\" gauge\n", &["TYPE my.metric gauge"]),
        ("# UNIT a seconds\n", &[]),
    ];
    for (input, want) in cases {
        assert_eq!(text(input), Ok(owned(want)), "input {input:?}");
    }
}

#[test]
fn text_format_errors_name_line_and_problem() {
    let cases: &[(&str, &str)] = &[
        ("a", "line 1: expected value after metric, got end of input"),
        ("a\n", "line 1: expected value after metric, got \"\\n\""),
        (
            "ok 1\na{b=\"c\"}\n",
            "line 2: expected value after metric, got \"\\n\"",
        ),
        (
            "a{b=\"c\"} \n",
            "line 1: expected value after metric, got \"\\n\"",
        ),
        ("a{b='c'} 1\n", "line 1: expected label value, got \"'c'}\""),
        ("a{b=\n", "line 1: expected label value, got \"\\n\""),
        ("a{b=} 1", "line 1: expected label value, got \"}\""),
        (
            "a{=\"\"} 0",
            "line 1: expected label name, got \"=\\\"\\\"}\"",
        ),
        ("a{b} 1", "line 1: expected equal, got \"}\""),
        (
            "a{1b=\"c\"} 1",
            "line 1: expected label name, got \"1b=\\\"c\\\"}\"",
        ),
        (
            "a{b:c=\"d\"} 1",
            "line 1: expected equal, got \":c=\\\"d\\\"}\"",
        ),
        ("a{b=\"c", "line 1: expected label value, got \"\\\"c\""),
        (
            "a{b=\"c\\\"} 1",
            "line 1: expected label value, got \"\\\"c\\\\\\\"}\"",
        ),
        ("a{b=\"c\"", "line 1: expected label name, got end of input"),
        (
            "a{\u{ff}=\"foo\"} 1",
            "line 1: expected label name, got \"ÿ=\\\"foo\\\"}\"",
        ),
        ("a true\n", "line 1: parsing value \"true\": invalid syntax"),
        ("a 1_2\n", "line 1: unsupported character in float: \"1_2\""),
        (
            "a 0x1p-3\n",
            "line 1: unsupported character in float: \"0x1p-3\"",
        ),
        ("a 0x10\n", "line 1: parsing value \"0x10\": invalid syntax"),
        (
            "a 1e400\n",
            "line 1: parsing value \"1e400\": value out of range",
        ),
        ("a +nan\n", "line 1: parsing value \"+nan\": invalid syntax"),
        ("a 1\r\n", "line 1: parsing value \"1\\r\": invalid syntax"),
        (
            "a 1 -5\n",
            "line 1: expected timestamp or new record, got \"-5\"",
        ),
        (
            "a 1 1.5\n",
            "line 1: expected next entry after timestamp, got \".5\"",
        ),
        (
            "a 0 1_2\n",
            "line 1: expected next entry after timestamp, got \"_2\"",
        ),
        (
            "a 1 2 3\n",
            "line 1: expected next entry after timestamp, got \"3\"",
        ),
        (
            "a 1 99999999999999999999\n",
            "line 1: parsing timestamp \"99999999999999999999\": value out of range",
        ),
        (
            "a 1{\n",
            "line 1: expected timestamp or new record, got \"{\"",
        ),
        (
            "a 0 1\0",
            "line 1: expected next entry after timestamp, got \"\\0\"",
        ),
        (
            "a\0{b=\"d\"} 1",
            "line 1: expected value after metric, got \"\\0{b=\\\"d\\\"}\"",
        ),
        (
            "{a=\"ok\"} 1",
            "line 1: metric name not set while parsing: \"{a=\\\"ok\\\"}\"",
        ),
        ("{\"a\",\"b\"} 1", "line 1: metric name already set"),
        ("a{\"b\"} 1", "line 1: metric name already set"),
        (
            "# TYPE #\n",
            "line 1: expected metric name after TYPE, got \"#\"",
        ),
        (
            "# HELP #\n",
            "line 1: expected metric name after HELP, got \"#\"",
        ),
        (
            "# TYPE \n",
            "line 1: expected metric name after TYPE, got \"\\n\"",
        ),
        (
            "# TYPE a unknown\n",
            "line 1: invalid metric type \"unknown\"",
        ),
        (
            "# TYPE a  counter\n",
            "line 1: invalid metric type \" counter\"",
        ),
        (
            "# TYPE a counter \n",
            "line 1: invalid metric type \"counter \"",
        ),
        ("# TYPE a\n", "line 1: invalid metric type \"\""),
        ("=1", "line 1: expected a valid start token, got \"=1\""),
        (
            "\"a\" 1",
            "line 1: expected a valid start token, got \"\\\"a\\\"\"",
        ),
        ("9 1", "line 1: expected a valid start token, got \"9\""),
    ];
    for (input, want) in cases {
        let got = run(Format::PrometheusText, input.as_bytes());
        assert_eq!(got, Err(want.to_string()), "input {input:?}");
    }
    // Line numbers count every line, including comments and blank ones.
    let body = "# HELP a x\n# TYPE a gauge\n\n# c\na 1\na 2\na 3\na 4\na 5\na 6\na 7\na}\n";
    assert_eq!(
        text(body),
        Err("line 12: parsing value \"}\": invalid syntax".to_string())
    );
}

#[test]
fn label_value_escapes() {
    let body = br#"a{b="x\"y\\z\nw\tq",c="\\n",d="\\\"",e="",f="trail\\"} 1"#;
    let s = &samples(Format::PrometheusText, body)[0];
    let l = s.labels().unwrap();
    assert_eq!(l[0].1, "x\"y\\z\nw\\tq");
    assert_eq!(l[1].1, "\\n");
    assert_eq!(l[2].1, "\\\"");
    assert_eq!(l[3].1, "");
    assert_eq!(l[4].1, "trail\\");
    assert!(matches!(l[3].1, Cow::Borrowed(_)));
    assert!(matches!(l[0].0, Cow::Borrowed(_)));
    // No escapes: nothing is allocated.
    let s = &samples(Format::PrometheusText, b"a{b=\"plain\"} 1")[0];
    assert!(matches!(s.labels().unwrap()[0].1, Cow::Borrowed("plain")));
}

#[test]
fn text_raw_newline_in_label_value_counts_lines() {
    // Prometheus' text lexer accepts a raw newline inside a label value.
    let body = "a{b=\"x\ny\"} 1\nc 2\nd\n";
    assert_eq!(
        text(body),
        Err("line 4: expected value after metric, got \"\\n\"".to_string())
    );
    let s = samples(Format::PrometheusText, b"a{b=\"x\ny\"} 1\nc 2\n");
    assert_eq!(s[0].labels().unwrap()[0].1, "x\ny");
    assert_eq!((s[0].line, s[1].line), (1, 3));
    // But not an escaped one.
    assert!(text("a{b=\"x\\\ny\"} 1").is_err());
}

#[test]
fn nul_bytes_follow_prometheus() {
    // NUL at a line start ends the input; NUL inside values and HELP is data.
    assert_eq!(text("a 1\n\0garbage {{{"), Ok(vec!["a{} 1".to_string()]));
    assert_eq!(
        text("a{b=\"\0x\"} 1"),
        Ok(vec!["a{b=\"\\0x\"} 1".to_string()])
    );
    assert!(text("a{b\0=\"x\"} 1").is_err());
}

#[test]
fn values_parse_like_go() {
    let ok: &[(&str, f64)] = &[
        ("1", 1.0),
        ("-1", -1.0),
        ("+1", 1.0),
        ("007", 7.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1e3", 1000.0),
        ("1E+3", 1000.0),
        ("1.5e-3", 0.0015),
        ("1.6894232e+09", 1.6894232e9),
        ("4.9351e-05", 4.9351e-05),
        ("7.424100000000001e-05", 7.424100000000001e-05),
        ("0.1", 0.1),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("0.000000000000000000000000000001", 1e-30),
        ("9007199254740993", 9007199254740992.0),
        ("1e-400", 0.0),
        ("0e999999999999", 0.0),
        ("Inf", f64::INFINITY),
        ("+Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("inf", f64::INFINITY),
        ("+infinity", f64::INFINITY),
        ("-INFINITY", f64::NEG_INFINITY),
    ];
    for (s, want) in ok {
        let got = parse_float(s.as_bytes());
        assert_eq!(got.map(f64::to_bits), Ok(want.to_bits()), "{s}");
    }
    let neg_zero = parse_float(b"-0").unwrap();
    assert!(neg_zero == 0.0 && neg_zero.is_sign_negative());
    for nan in ["NaN", "nan", "NAN", "nAn"] {
        assert_eq!(
            parse_float(nan.as_bytes()).unwrap().to_bits(),
            NORMAL_NAN_BITS
        );
    }
    let bad: &[(&str, FloatError)] = &[
        ("", FloatError::Syntax),
        ("+", FloatError::Syntax),
        (".", FloatError::Syntax),
        ("e1", FloatError::Syntax),
        ("1e", FloatError::Syntax),
        ("1e+", FloatError::Syntax),
        ("1.5.", FloatError::Syntax),
        ("--1", FloatError::Syntax),
        ("+nan", FloatError::Syntax),
        ("-NaN", FloatError::Syntax),
        ("infin", FloatError::Syntax),
        ("Info", FloatError::Syntax),
        ("nana", FloatError::Syntax),
        ("0x10", FloatError::Syntax),
        ("1 ", FloatError::Syntax),
        ("true", FloatError::Syntax),
        ("1_000", FloatError::Unsupported),
        ("0x1p-3", FloatError::Unsupported),
        ("0x1P-3", FloatError::Unsupported),
        ("1e309", FloatError::Range),
        ("-1e309", FloatError::Range),
        ("1e99999999999999999999", FloatError::Range),
    ];
    for (s, want) in bad {
        assert_eq!(parse_float(s.as_bytes()), Err(*want), "{s:?}");
    }
}

#[test]
fn sample_values_are_normalised_nan_never_stale() {
    let s = samples(Format::PrometheusText, b"a NaN\nb nan\nc -Inf\n");
    assert_eq!(s[0].value.to_bits(), NORMAL_NAN_BITS);
    assert_eq!(s[1].value.to_bits(), NORMAL_NAN_BITS);
    assert_eq!(s[2].value, f64::NEG_INFINITY);
}

#[test]
fn duplicate_label_names_are_rejected_when_labels_are_read() {
    for body in [
        "a{b=\"1\",b=\"2\"} 1",
        "a{__name__=\"x\"} 1",
        "{\"a\",\"b\"=\"1\",b=\"2\"} 1",
    ] {
        let s = samples(Format::PrometheusText, body.as_bytes());
        let err = s[0].labels().unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.msg.contains("is not unique"), "{body}: {err}");
    }
}

#[test]
fn quoted_utf8_names() {
    let s = samples(
        Format::PrometheusText,
        "{\"my.metric\",\"label.x\"=\"v\",y=\"w\"} 1\n{\"ünï\"} 2\nplain{\"é\"=\"1\"} 3\n{\"esc\\\"aped\"} 4\n"
            .as_bytes(),
    );
    assert_eq!(s[0].name, "my.metric");
    assert_eq!(s[0].series, "{\"my.metric\",\"label.x\"=\"v\",y=\"w\"}");
    let l = s[0].labels().unwrap();
    assert_eq!(render_labels(&l), "{label.x=\"v\",y=\"w\"}");
    assert_eq!(s[1].name, "ünï");
    assert!(s[1].labels().unwrap().is_empty());
    assert_eq!(render_labels(&s[2].labels().unwrap()), "{é=\"1\"}");
    assert_eq!(s[3].name, "esc\"aped");
    assert_eq!(
        om("{\"my.metric\",\"a\"=\"b\"} 1\n# EOF\n"),
        Ok(vec!["my.metric{a=\"b\"} 1".to_string()])
    );
    assert!(text("{\"\"} 1").is_err());
}

#[test]
fn le_and_quantile_are_normalised_under_their_type() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+inf\"} 1\nh_bucket{le=\"0.005\"} 1\nh_bucket{le=\"1e-05\"} 1\nh_bucket{le=\"x\"} 1\n\
                # TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.99\",le=\"1\"} 1\n\
                # TYPE g gauge\ng{le=\"1\",quantile=\"0\"} 1\n";
    let got: Vec<String> = samples(Format::PrometheusText, body.as_bytes())
        .iter()
        .map(|s| render_labels(&s.labels().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            "{le=\"1.0\"}",
            "{le=\"+Inf\"}",
            "{le=\"0.005\"}",
            "{le=\"1e-05\"}",
            "{le=\"x\"}",
            "{quantile=\"0.0\"}",
            "{quantile=\"0.99\",le=\"1\"}",
            "{le=\"1\",quantile=\"0\"}",
        ]
    );
    let s = samples(Format::PrometheusText, body.as_bytes());
    assert_eq!(s[0].metric_type, MetricType::Histogram);
    assert!(matches!(s[2].labels().unwrap()[0].1, Cow::Borrowed(_)));
}

#[test]
fn series_text_is_the_cache_key() {
    let s = samples(
        Format::PrometheusText,
        b"# TYPE x counter\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1 5\n  a 1\nb {c=\"d\"}  2\n",
    );
    assert_eq!(
        s[0].series,
        "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"
    );
    assert_eq!(s[0].timestamp_ms, Some(5));
    assert_eq!(s[0].line, 2);
    assert_eq!(s[1].series, "a");
    assert_eq!(s[2].series, "b {c=\"d\"}");
    assert_eq!(render_labels(&s[2].labels().unwrap()), "{c=\"d\"}");
}

#[test]
fn very_long_lines() {
    let long = "v".repeat(1 << 20);
    let body = format!("a{{b=\"{long}\"}} 1\n");
    let s = samples(Format::PrometheusText, body.as_bytes());
    assert_eq!(s[0].labels().unwrap()[0].1.len(), 1 << 20);
    let many: Vec<String> = (0..2000).map(|i| format!("l{i}=\"{i}\"")).collect();
    let body = format!("a{{{}}} 1\n# EOF\n", many.join(","));
    let s = samples(Format::OpenMetrics, body.as_bytes());
    let l = s[0].labels().unwrap();
    assert_eq!(l.len(), 2000);
    assert_eq!(l[1999].1, "1999");
    let help = format!("# HELP a {long}\n");
    assert_eq!(text(&help).unwrap()[0].len(), long.len() + 9);
}

#[test]
fn invalid_utf8_outside_values_is_tolerated_in_text_comments_only() {
    let body = b"# \xff\xfe comment\na{b=\"\xc3\xa9\"} 1\n";
    let s = samples(Format::PrometheusText, body);
    assert_eq!(s[0].labels().unwrap()[0].1, "é");
    assert_eq!(s[0].series, "a{b=\"é\"}");
    assert_eq!(
        run(Format::PrometheusText, b"# HELP a \xff\n"),
        Err("line 1: help text \"\u{fffd}\" is not a valid utf8 string".to_string())
    );
    assert_eq!(
        run(Format::PrometheusText, b"a 1\na{b=\"\xff\"} 1\n"),
        Err("line 2: invalid UTF-8 label value: \"\\\"\u{fffd}\\\"\"".to_string())
    );
    assert!(run(Format::PrometheusText, b"# \xff\n{\"\xff\"} 1\n").is_err());
    assert!(run(Format::OpenMetrics, b"a{b=\"\xff\"} 1\n# EOF\n").is_err());
}

#[test]
fn openmetrics_accepts_spec_examples() {
    let body = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
ggh_gcount 1
ggh_gsum 3
ggh_created 1520872607.123
# TYPE ii info
ii_info{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
# TYPE un unknown
testmetric{label="\"bar\""} 1
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
foo_total{a="b"} 17.0 1520879607.789 # {id="counter-test"} 5 1520879607.7
foo_created{a="b"} 1520872607.123
# TYPE bar summary
bar_count 17.0
bar_created 1520872608.124
# TYPE baz histogram
baz_bucket{le="0.0"} 0
baz_bucket{le="+Inf"} 17
baz_created 1520872609.125
# TYPE fizz_created gauge
fizz_created 17.0
# TYPE qux_total counter
qux_total 1
qux_created 1
# TYPE other counter
unrelated_created 1
# EOF
"#;
    let want = [
        "HELP go_gc_duration_seconds \"A summary of the GC invocation durations.\"",
        "TYPE go_gc_duration_seconds summary",
        "UNIT go_gc_duration_seconds seconds",
        "go_gc_duration_seconds{quantile=\"0.0\"} 4.9351e-05",
        "go_gc_duration_seconds{quantile=\"0.5\",a=\"b\"} 8.3835e-05",
        "HELP nohelp1 \"\"",
        "HELP help2 \"escape \\\\ \\n \\\\ \\\" \\\\x chars\"",
        "UNIT nounit ",
        "go_gc_duration_seconds_count{} 99",
        "some:aggregate:rate5m{a_b=\"c\"} 1",
        "TYPE go_goroutines gauge",
        "go_goroutines{} 33 @123123",
        "TYPE hhh histogram",
        "hhh_bucket{le=\"+Inf\"} 1 # {id=\"histogram-bucket-test\"} 4",
        "hhh_count{} 1 # {id=\"histogram-count-test\"} 4",
        "TYPE ggh gaugehistogram",
        "ggh_bucket{le=\"+Inf\"} 1 # {id=\"gaugehistogram-bucket-test\",xx=\"yy\"} 4 @123123",
        "ggh_gcount{} 1",
        "ggh_gsum{} 3",
        "ggh_created{} 1.520872607123e+09",
        "TYPE ii info",
        "ii_info{foo=\"bar\"} 1",
        "TYPE ss stateset",
        "ss{ss=\"foo\"} 1",
        "ss{ss=\"bar\"} 0",
        "TYPE un unknown",
        "testmetric{label=\"\\\"bar\\\"\"} 1",
        "TYPE foo counter",
        "foo_total{} 17 @1520879607789 # {id=\"counter-test\"} 5",
        "foo_created{} 1.520872607123e+09 created",
        "foo_total{a=\"b\"} 17 @1520879607789 # {id=\"counter-test\"} 5 @1520879607700",
        "foo_created{a=\"b\"} 1.520872607123e+09 created",
        "TYPE bar summary",
        "bar_count{} 17",
        "bar_created{} 1.520872608124e+09 created",
        "TYPE baz histogram",
        "baz_bucket{le=\"0.0\"} 0",
        "baz_bucket{le=\"+Inf\"} 17",
        "baz_created{} 1.520872609125e+09 created",
        "TYPE fizz_created gauge",
        "fizz_created{} 17",
        "TYPE qux_total counter",
        "qux_total{} 1",
        "qux_created{} 1 created",
        "TYPE other counter",
        "unrelated_created{} 1",
    ];
    assert_eq!(om(body), Ok(want.iter().map(|s| s.to_string()).collect()));
}

#[test]
fn openmetrics_timestamps_and_exemplars() {
    let cases: &[(&str, &str)] = &[
        ("a 1 1520879607.789\n", "a{} 1 @1520879607789"),
        ("a 1 -1.5\n", "a{} 1 @-1500"),
        ("a 1 1e3\n", "a{} 1 @1000000"),
        ("a 1 0.0019\n", "a{} 1 @1"),
        ("a_total 1 # {} 2\n", "a_total{} 1 # {} 2"),
        (
            "a_total 1 # {t=\"x\\\"y\"} 2 3\n",
            "a_total{} 1 # {t=\"x\\\"y\"} 2 @3000",
        ),
        (
            "a_total 1 # {\"trace.id\"=\"x\",b=\"c\",} NaN\n",
            "a_total{} 1 # {trace.id=\"x\",b=\"c\"} NaN",
        ),
        (
            "a_total 1 5 # {a=\"b\"} 2 3\n",
            "a_total{} 1 @5000 # {a=\"b\"} 2 @3000",
        ),
    ];
    for (line, want) in cases {
        let body = format!("{line}# EOF\n");
        assert_eq!(om(&body), Ok(vec![want.to_string()]), "{line:?}");
    }
    let s = samples(Format::OpenMetrics, b"a 1 # {x=\"y\"} NaN\n# EOF");
    assert_eq!(
        s[0].exemplar.as_ref().unwrap().value.to_bits(),
        NORMAL_NAN_BITS
    );
}

#[test]
fn openmetrics_errors() {
    let cases: &[(&str, &str)] = &[
        ("", "line 1: data does not end with # EOF"),
        ("a 1", "line 1: data does not end with # EOF"),
        ("a 1\n", "line 2: data does not end with # EOF"),
        (
            "metric",
            "line 1: expected value after metric, got end of input",
        ),
        (
            "a_total 1 # {aa=\"bb\"} 4",
            "line 1: data does not end with # EOF",
        ),
        ("\n", "line 1: expected a valid start token, got \"\\n\""),
        (
            "a 1\n\n# EOF\n",
            "line 2: expected a valid start token, got \"\\n\"",
        ),
        (
            " a 1\n# EOF\n",
            "line 1: expected a valid start token, got \" \"",
        ),
        (
            "9\n# EOF\n",
            "line 1: expected a valid start token, got \"9\"",
        ),
        (
            "# comment\n# EOF\n",
            "line 1: expected a valid start token, got \"#\"",
        ),
        (
            "#EOF\n",
            "line 1: expected a valid start token, got \"#EOF\"",
        ),
        ("# EOF\na 1", "line 2: unexpected data after # EOF"),
        ("# EOF\n\n", "line 2: unexpected data after # EOF"),
        ("# EOFa 1", "line 1: unexpected data after # EOF"),
        ("# EOF \n", "line 1: unexpected data after # EOF"),
        (
            "# TYPE u untyped\n# EOF\n",
            "line 1: invalid metric type \"untyped\"",
        ),
        (
            "# TYPE c counter \n# EOF\n",
            "line 1: invalid metric type \"counter \"",
        ),
        (
            "# TYPE c  counter\n# EOF\n",
            "line 1: invalid metric type \" counter\"",
        ),
        (
            "#  TYPE c counter\n# EOF\n",
            "line 1: expected a valid start token, got \"#\"",
        ),
        (
            "#\tTYPE c counter\n",
            "line 1: expected a valid start token, got \"#\"",
        ),
        (
            "# TYPE \n# EOF\n",
            "line 1: expected metric name after TYPE, got \"\\n\"",
        ),
        ("# TYPE m\n# EOF\n", "line 1: expected text in TYPE"),
        ("# HELP m\n# EOF\n", "line 1: expected text in HELP"),
        ("# HELP m x", "line 1: expected text in HELP"),
        ("# UNIT m\n# EOF\n", "line 1: expected text in UNIT"),
        (
            "# UNIT metric suffix\n# EOF\n",
            "line 1: unit \"suffix\" not a suffix of metric \"metric\"",
        ),
        (
            "# UNIT metricsuffix suffix\n# EOF\n",
            "line 1: unit \"suffix\" not a suffix of metric \"metricsuffix\"",
        ),
        (
            "# UNIT m suffix\n# EOF\n",
            "line 1: unit \"suffix\" not a suffix of metric \"m\"",
        ),
        (
            "a\t1\n# EOF\n",
            "line 1: expected value after metric, got \"\\t\"",
        ),
        (
            "a  1\n# EOF\n",
            "line 1: expected value after metric, got \" \"",
        ),
        (
            "a 1\t2\n# EOF\n",
            "line 1: parsing value \"1\\t2\": invalid syntax",
        ),
        (
            "a 1 2 \n# EOF\n",
            "line 1: expected next entry after timestamp, got \" \"",
        ),
        (
            "a 1 2 #\n# EOF\n",
            "line 1: expected next entry after timestamp, got \" \"",
        ),
        (
            "a 1 \n# EOF\n",
            "line 1: expected timestamp or new record, got \" \"",
        ),
        (
            "a 1 1z\n# EOF\n",
            "line 1: parsing timestamp \"1z\": invalid syntax",
        ),
        (
            "a 1 1 1\n# EOF\n",
            "line 1: expected next entry after timestamp, got \" \"",
        ),
        ("a 1 NaN\n# EOF\n", "line 1: invalid timestamp NaN"),
        ("a 1 -Inf\n# EOF\n", "line 1: invalid timestamp -Inf"),
        ("a 1 Inf\n# EOF\n", "line 1: invalid timestamp +Inf"),
        (
            "a 1\r\n# EOF\n",
            "line 1: parsing value \"1\\r\": invalid syntax",
        ),
        (
            "a {b=\"c\"} 1\n# EOF\n",
            "line 1: parsing value \"{b=\\\"c\\\"}\": invalid syntax",
        ),
        (
            "a{b='c'} 1\n# EOF\n",
            "line 1: expected label value, got \"'c'}\"",
        ),
        (
            "a{,b=\"c\"} 1\n# EOF\n",
            "line 1: expected label name, got \",b=\\\"c\\\"}\"",
        ),
        (
            "a{b=\"c\"d=\"e\"} 1\n# EOF\n",
            "line 1: expected comma or brace close, got \"d=\\\"e\\\"}\"",
        ),
        (
            "a{b=\"c\",,d=\"e\"} 1\n# EOF\n",
            "line 1: expected label name, got \",d=\\\"e\\\"}\"",
        ),
        (
            "a{b =\"c\"} 1\n# EOF\n",
            "line 1: expected equal, got \" \"",
        ),
        (
            "a{b=\"c\" } 1\n# EOF\n",
            "line 1: expected comma or brace close, got \" \"",
        ),
        (
            "a{b=\"c\nd\"} 1\n# EOF\n",
            "line 1: expected label value, got \"\\\"c\"",
        ),
        (
            "{b=\"c\",} 1\n# EOF\n",
            "line 1: metric name not set while parsing: \"{b=\\\"c\\\",}\"",
        ),
        (
            "a_total 1 # {aa=bb}\n# EOF\n",
            "line 1: expected label value, got \"bb}\"",
        ),
        (
            "a_total 1 # {aa=\"bb\"}\n# EOF\n",
            "line 1: expected value after exemplar labels, got \"\\n\"",
        ),
        (
            "a_total 1 # {bb}\n# EOF\n",
            "line 1: expected equal, got \"}\"",
        ),
        (
            "a_total 1 # {\"bb\"} 1\n# EOF\n",
            "line 1: expected label name, got \"}\"",
        ),
        (
            "a_total 1 # {aa=\"bb\",,cc=\"dd\"} 1\n# EOF\n",
            "line 1: expected label name, got \",cc=\\\"dd\\\"}\"",
        ),
        (
            "a_total 1 # {aa=\"bb\"} 1_2\n# EOF\n",
            "line 1: unsupported character in float: \"1_2\"",
        ),
        (
            "a_total 1 # {aa=\"bb\"} true\n# EOF\n",
            "line 1: parsing value \"true\": invalid syntax",
        ),
        (
            "a_total 1 # {aa=\"bb\"} 4 NaN\n# EOF\n",
            "line 1: invalid exemplar timestamp NaN",
        ),
        (
            "a_total 1 # {aa=\"bb\"} 4 -Inf\n# EOF\n",
            "line 1: invalid exemplar timestamp -Inf",
        ),
        (
            "a_total 1 # {aa=\"bb\"} 4 1 2\n# EOF\n",
            "line 1: expected next entry after exemplar timestamp, got \" \"",
        ),
        (
            "a_total 1 # {aa=\"bb\"} 4 \n# EOF\n",
            "line 1: expected timestamp or comment, got \" \"",
        ),
        (
            "a_total 1 # {b=\"\0x\"} 1\n# EOF\n",
            "line 1: expected label value, got \"\\\"\\0x\\\"}\"",
        ),
        (
            "a_total 1 #{b=\"x\"} 1\n# EOF\n",
            "line 1: parsing timestamp \"#{b=\\\"x\\\"}\": invalid syntax",
        ),
    ];
    for (input, want) in cases {
        let got = run(Format::OpenMetrics, input.as_bytes());
        assert_eq!(got, Err(want.to_string()), "input {input:?}");
    }
}

#[test]
fn openmetrics_eof_variants() {
    assert_eq!(om("# EOF"), Ok(vec![]));
    assert_eq!(om("# EOF\n"), Ok(vec![]));
    assert_eq!(om("a 1\n# EOF"), Ok(vec!["a{} 1".to_string()]));
    assert_eq!(
        om("a{b=\"\0\"} 1\n# EOF"),
        Ok(vec!["a{b=\"\\0\"} 1".to_string()])
    );
    // A text-format parser reading an OpenMetrics body sees `# EOF` as a comment.
    assert_eq!(text("a 1\n# EOF\n"), Ok(vec!["a{} 1".to_string()]));
}

#[test]
fn content_type_selects_the_parser() {
    use Format::*;
    let cases: &[(&str, Format, Option<Format>)] = &[
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            OpenMetrics,
            Some(OpenMetrics),
        ),
        (
            "application/openmetrics-text;version=0.0.1",
            OpenMetrics,
            Some(OpenMetrics),
        ),
        (
            "Application/OpenMetrics-Text",
            OpenMetrics,
            Some(OpenMetrics),
        ),
        (
            "text/plain; version=0.0.4; charset=utf-8",
            PrometheusText,
            Some(PrometheusText),
        ),
        (
            "text/plain;version=1.0.0;escaping=allow-utf-8",
            PrometheusText,
            Some(PrometheusText),
        ),
        ("TEXT/PLAIN", PrometheusText, Some(PrometheusText)),
        ("", PrometheusText, None),
        ("application/json", PrometheusText, None),
        (
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily",
            PrometheusText,
            None,
        ),
        ("openmetrics", PrometheusText, None),
        ("application/openmetrics text", PrometheusText, None),
    ];
    for (ct, v2, v3) in cases {
        assert_eq!(format_from_content_type(ct), *v2, "{ct}");
        assert_eq!(media_type_format(ct), *v3, "{ct}");
    }
}

#[test]
fn go_float_formatting() {
    let cases: &[(f64, &str, &str)] = &[
        (1.0, "1", "1.0"),
        (0.0, "0", "0.0"),
        (-0.0, "-0", "0.0"),
        (-1.0, "-1", "-1.0"),
        (10.0, "10", "10.0"),
        (2.5, "2.5", "2.5"),
        (0.005, "0.005", "0.005"),
        (0.0001, "0.0001", "0.0001"),
        (1.5e-5, "1.5e-05", "1.5e-05"),
        (123456.0, "123456", "123456.0"),
        (1e6, "1e+06", "1e+06"),
        (1.6894232e9, "1.6894232e+09", "1.6894232e+09"),
        (-2.85e-07, "-2.85e-07", "-2.85e-07"),
        (
            9.223372036854776e18,
            "9.223372036854776e+18",
            "9.223372036854776e+18",
        ),
        (1e21, "1e+21", "1e+21"),
        (1e100, "1e+100", "1e+100"),
        (5e-324, "5e-324", "5e-324"),
        (
            f64::MAX,
            "1.7976931348623157e+308",
            "1.7976931348623157e+308",
        ),
        (f64::INFINITY, "+Inf", "+Inf"),
        (f64::NEG_INFINITY, "-Inf", "-Inf"),
        (f64::NAN, "NaN", "NaN"),
    ];
    for (f, g, om) in cases {
        assert_eq!(format_float(*f, 'g', -1), *g, "{f}");
        assert_eq!(format_openmetrics_float(*f), *om, "{f}");
    }
}

#[test]
fn family_membership() {
    use MetricType::*;
    let cases: &[(&str, &str, MetricType, bool)] = &[
        ("foo_total", "foo", Counter, true),
        ("foo_total", "foo_total", Counter, true),
        ("foo", "foo", Counter, true),
        ("foo_created", "foo", Counter, false),
        ("foo_bucket", "foo", Histogram, true),
        ("foo_sum", "foo", Histogram, true),
        ("foo_count", "foo", Histogram, true),
        ("foo_total", "foo", Histogram, false),
        ("foo_gsum", "foo", GaugeHistogram, true),
        ("foo_sum", "foo", GaugeHistogram, false),
        ("foo", "foo", Summary, true),
        ("foo_count", "foo", Summary, true),
        ("foo_info", "foo", Info, true),
        ("foo_info", "foo_info", Info, true),
        ("foo", "foo", Gauge, true),
        ("foo_bar", "foo", Gauge, false),
        ("bar", "foo", Gauge, false),
    ];
    for (name, fam, kind, want) in cases {
        assert_eq!(
            series_belongs_to_family(name, fam, *kind),
            *want,
            "{name} {fam} {kind}"
        );
    }
}

#[test]
fn node_exporter_payload_parses_in_both_formats() {
    let body = sonde_harness::payload::node_exporter_payload(&|v| {
        crate::gocompat::strconv::format_float(v, 'g', -1)
    });
    let s = samples(Format::PrometheusText, body.as_bytes());
    assert!((480..=540).contains(&s.len()), "{} samples", s.len());
    let mut buf = Vec::new();
    for x in &s {
        x.labels_into(&mut buf).unwrap();
    }
    let cpu = s
        .iter()
        .find(|x| x.name == "node_cpu_seconds_total")
        .unwrap();
    assert_eq!(
        render_labels(&cpu.labels().unwrap()),
        "{cpu=\"0\",mode=\"idle\"}"
    );
    let om_body = body.replace(" untyped\n", " unknown\n") + "# EOF\n";
    assert_eq!(
        samples(Format::OpenMetrics, om_body.as_bytes()).len(),
        s.len()
    );
    let meta = run(Format::PrometheusText, body.as_bytes()).unwrap();
    assert!(meta.contains(&"TYPE go_gc_duration_seconds summary".to_string()));
    assert!(meta
        .iter()
        .any(|l| l.starts_with("go_gc_heap_allocs_by_size_bytes_total_bucket{le=\"+Inf\"} ")));
}

#[test]
fn fuzz_regressions_replay() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/exposition");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("regression dir") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        crate::fuzzing::exposition(&data);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed-valid") {
            let (first, body) = data.split_first().unwrap();
            let format = if first & 1 == 0 {
                Format::PrometheusText
            } else {
                Format::OpenMetrics
            };
            let entries = run(format, body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!entries.is_empty(), "{name}");
        } else if name.starts_with("seed-bad") {
            let (first, body) = data.split_first().unwrap();
            let format = if first & 1 == 0 {
                Format::PrometheusText
            } else {
                Format::OpenMetrics
            };
            assert!(run(format, body).is_err(), "{name} should not parse");
        }
        n += 1;
    }
    assert!(n >= 4, "only {n} regression inputs");
}

#[test]
fn fuzz_parse_survives_odd_inputs() {
    for data in [
        &b""[..],
        b"\0",
        b"\x01",
        b"\x00{",
        b"\x01{",
        b"\x00a{b=\"",
        b"\x01a{b=\"\\",
        b"\x00# HELP \"",
        b"\x01# HELP \"\\",
        b"\x01a 1 # {",
        b"\x01a 1 # {a=\"b\"} 1 ",
        b"\x00a{\"\xff\"} 1",
        b"\x01# UNIT \"\xff\" x\n",
    ] {
        crate::fuzzing::exposition(data);
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            (0u64..1_000_000).prop_map(|n| n as f64),
            (0u64..1_000_000, 0u32..12).prop_map(|(n, d)| n as f64 / 10f64.powi(d as i32)),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever we render, the parser reads back.
        #[test]
        fn round_trip(
            name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
            labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", "\\PC{0,12}|[\\\\\"\n a]{0,6}", 0..6),
            v in value(),
            ts in proptest::option::of(0i64..4_000_000_000_000),
            om in any::<bool>(),
            gen_style in 0u8..3,
        ) {
            prop_assume!(!labels.contains_key("__name__"));
            let pairs: Vec<String> = labels.iter().map(|(k, val)| format!("{k}=\"{}\"", escape(val))).collect();
            let sep = if om || gen_style == 0 { "," } else if gen_style == 1 { ", " } else { " , " };
            let mut line = name.clone();
            if !pairs.is_empty() || gen_style == 2 {
                line.push('{');
                line.push_str(&pairs.join(sep));
                if !om && gen_style == 1 && !pairs.is_empty() {
                    line.push(',');
                }
                line.push('}');
            }
            line.push(' ');
            line.push_str(&format_float(v, 'g', -1));
            if let Some(ts) = ts {
                if om {
                    line.push_str(&format!(" {}.{:03}", ts / 1000, ts % 1000));
                } else {
                    line.push_str(&format!(" {ts}"));
                }
            }
            line.push('\n');
            let format = if om {
                line.push_str("# EOF\n");
                Format::OpenMetrics
            } else {
                Format::PrometheusText
            };
            let s = samples(format, line.as_bytes());
            prop_assert_eq!(s.len(), 1);
            let s = &s[0];
            prop_assert_eq!(&s.name, &name);
            prop_assert_eq!(s.value.to_bits(), v.to_bits());
            if !om {
                prop_assert_eq!(s.timestamp_ms, ts);
            } else if let Some(ts) = ts {
                // Float seconds lose at most a millisecond to truncation.
                let got = s.timestamp_ms.unwrap();
                prop_assert!((got - ts).abs() <= 1, "{} vs {}", got, ts);
            }
            let got = s.labels().unwrap();
            let want: Vec<(String, String)> = labels.into_iter().collect();
            let got: Vec<(String, String)> = got.into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            prop_assert_eq!(got, want);
        }

        /// The decimal fast path agrees with Rust's (correctly rounded) parser.
        #[test]
        fn float_fast_path_matches_std(
            int in "[0-9]{0,20}",
            frac in proptest::option::of("[0-9]{0,20}"),
            exp in proptest::option::of(-330i32..330),
            neg in any::<bool>(),
        ) {
            let mut s = String::new();
            if neg { s.push('-'); }
            s.push_str(&int);
            if let Some(f) = &frac { s.push('.'); s.push_str(f); }
            prop_assume!(s.bytes().any(|c| c.is_ascii_digit()));
            if let Some(e) = exp { s.push_str(&format!("e{e}")); }
            let want = s.parse::<f64>().unwrap();
            match parse_float(s.as_bytes()) {
                Ok(got) => prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", s),
                Err(e) => {
                    prop_assert_eq!(e, FloatError::Range, "{}", s);
                    prop_assert!(want.is_infinite());
                }
            }
        }

        /// Arbitrary bytes never panic, in either format.
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            crate::fuzzing::exposition(&data);
        }

        /// Mutations of a valid body never panic.
        #[test]
        fn mutated_payload_never_panics(pos in 0usize..4000, byte in any::<u8>(), om in any::<bool>()) {
            let mut body = vec![u8::from(om)];
            body.extend_from_slice(MUTATE_BASE.as_bytes());
            let i = pos % body.len();
            body[i] = byte;
            crate::fuzzing::exposition(&body);
            body.truncate(i);
            crate::fuzzing::exposition(&body);
        }
    }

    const MUTATE_BASE: &str =
        "# HELP a_total Help \\n text.\n# TYPE a counter\n# UNIT a_seconds seconds\n\
        a_total{b=\"c\\\"\",\"d.e\"=\"f\"} 1.5e3 1520879607.789 # {t=\"x\"} 2 3\na_created 1\n\
        {\"q.n\",x=\"y\"} NaN\nh_bucket{le=\"+Inf\"} 17\n# EOF\n";
}
