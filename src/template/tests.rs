//! Tests of the template engine against Go's outputs.
#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

fn run(text: &str, data: serde_json::Value) -> Result<String, String> {
    let t = Template::parse("test", text)?;
    t.execute(&data, &Env::default())
}

fn ok(text: &str, data: serde_json::Value) -> String {
    match run(text, data) {
        Ok(s) => s,
        Err(e) => panic!("{text:?}: unexpected error {e}"),
    }
}

fn data() -> serde_json::Value {
    json!({
        "s": "str",
        "a": [1, 2, 3],
        "b": [1, 2, 3, 4],
        "m": {"k": "v", "n": -3},
        "empty": [],
        "f": 1.5,
        "t": true,
        "nested": {"x": {"y": "deep"}},
        "null": null,
    })
}

#[test]
fn language() {
    let cases: &[(&str, &str)] = &[
        ("plain text", "plain text"),
        ("{{ 1 }}", "1"),
        ("{{1.5}}|{{1e3}}|{{0x1F}}|{{'a'}}|{{-7}}|{{1_000}}|{{0o17}}|{{0b101}}", "1.5|1000|31|97|-7|1000|15|5"),
        (r#"{{"a\tb\u00e9\x41\101"}}"#, "a\tbéAA"),
        ("{{`raw\\n`}}", "raw\\n"),
        ("{{true}} {{false}}", "true false"),
        // Whitespace trimming.
        ("a  {{- 1 -}}  b", "a1b"),
        ("a \n\t{{- 1}} b", "a1 b"),
        ("a {{1 -}} \n\t b", "a 1b"),
        ("a {{- /* comment */ -}} b", "ab"),
        ("a{{/* c */}}b", "ab"),
        ("x {{-3}}", "x -3"),
        ("{{3 -}}\n y", "3y"),
        ("{{- 3 -}}", "3"),
        ("{{ 3 -}}", "3"),
        ("<{{- \"x\" -}}\n\n>", "<x>"),
        // Conditionals.
        ("{{if true}}T{{else}}F{{end}}", "T"),
        ("{{if 0}}T{{else if 1}}E{{else}}F{{end}}", "E"),
        ("{{if 0}}T{{else if 0}}E{{else}}F{{end}}", "F"),
        ("{{if .t}}{{if .s}}[{{.s}}]{{end}}{{end}}", "[str]"),
        ("{{if .empty}}y{{else}}n{{end}}{{if .m}}y{{end}}{{if .null}}y{{else}}n{{end}}", "nyn"),
        ("{{if \"\"}}y{{else}}n{{end}}{{if 0.0}}y{{else}}n{{end}}{{if .missing}}y{{else}}n{{end}}", "nnn"),
        ("{{with .s}}{{.}}{{end}}", "str"),
        ("{{with .missing}}x{{else}}none{{end}}", "none"),
        ("{{with $x := .s}}{{$x}}{{.}}{{end}}", "strstr"),
        ("{{with .missing}}a{{else with .s}}{{.}}{{end}}", "str"),
        // Range.
        ("{{range .a}}{{.}},{{end}}", "1,2,3,"),
        ("{{range $i, $e := .a}}{{$i}}={{$e}} {{end}}", "0=1 1=2 2=3 "),
        ("{{range $e := .a}}{{$e}}{{end}}", "123"),
        ("{{range $k, $v := .m}}{{$k}}:{{$v}};{{end}}", "k:v;n:-3;"),
        ("{{range .m}}{{.}};{{end}}", "v;-3;"),
        ("{{range .empty}}x{{else}}empty{{end}}", "empty"),
        ("{{range .missing}}x{{else}}none{{end}}", "none"),
        ("{{range 3}}{{.}}{{end}}", "012"),
        ("{{range .b}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}", "13"),
        ("{{range .a}}{{range .}}{{end}}{{end}}", ""),
        ("{{range .a}}{{$.s}}{{end}}", "strstrstr"),
        // Variables.
        ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
        ("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", "21"),
        ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
        ("{{$s := 0}}{{range .a}}{{$s = .}}{{end}}{{$s}}", "3"),
        ("{{$}}", "map[a:[1 2 3] b:[1 2 3 4] empty:[] f:1.5 m:map[k:v n:-3] nested:map[x:map[y:deep]] null:<nil> s:str t:true]"),
        ("{{$.nested.x.y}} {{.nested.x.y}}", "deep deep"),
        ("{{$m := .m}}{{$m.k}}", "v"),
        // Pipelines and parentheses.
        (r#"{{"abc" | printf "%s-%s" "x"}}"#, "x-abc"),
        ("{{.s | len}}", "3"),
        (r#"{{ (index .nested "x").y }}"#, "deep"),
        (r#"{{ len (print "ab" "cd") | printf "%03d" }}"#, "004"),
        // Templates.
        (r#"{{define "T"}}[{{.}}]{{end}}{{template "T" "x"}}{{template "T" .s}}"#, "[x][str]"),
        (r#"{{define "T"}}[{{.}}]{{end}}{{template "T"}}"#, "[<no value>]"),
        (r#"{{block "B" .s}}<{{.}}>{{end}}"#, "<str>"),
        (r#"{{define "T"}}{{$}}{{end}}{{template "T" 5}}"#, "5"),
        (r#"{{define "list"}}{{range .}}({{.}}){{end}}{{end}}{{template "list" .a}}"#, "(1)(2)(3)"),
        ("\n{{define \"T\"}}x{{end}}\n", "\n\n"),
        // Builtins.
        (r#"{{and 1 0 2}} {{and 1 2}} {{or 0 "" "x"}} {{or 0 ""}} {{not 0}} {{not "a"}}"#, "0 2 x  true false"),
        ("{{and .missing .missing.x}}", "<no value>"),
        (r#"{{eq 1 1}} {{eq "a" "b" "a"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}"#, "true true true true true true false"),
        ("{{eq .missing 1}} {{eq .s .s}} {{eq .null nil}}", "false true true"),
        (r#"{{index .a 1}} {{index .m "k"}} {{index .nested "x" "y"}} {{index .m "zz"}}|"#, "2 v deep <no value>|"),
        (r#"{{slice "abcdef" 1 3}} {{slice .a 1}} {{slice .a}} {{slice "abc" 1 1}}|"#, "bc [2 3] [1 2 3] |"),
        ("{{len .a}} {{len .m}} {{len .s}} {{len \"héllo\"}}", "3 2 3 6"),
        (r#"{{print 1 2 "a" 3 "b" "c"}}"#, "1 2a3bc"),
        (r#"{{println 1 "a" 2}}"#, "1 a 2\n"),
        (r#"{{html "<a href='x'>&\"" }}"#, "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"),
        (r#"{{js "a'b\"<>&=\\ é\n"}}"#, r#"a\'b\"\u003C\u003E\u0026\u003D\\ é\u000A"#),
        (r#"{{urlquery "a b&c=d/é~"}}"#, "a+b%26c%3Dd%2F%C3%A9~"),
        ("{{html .missing}}", "&lt;no value&gt;"),
        ("{{print .missing}} {{printf \"%v\" .missing}}", "<nil> <nil>"),
        // Printing of values.
        ("{{.a}} {{.m}} {{.f}} {{.t}} {{.null}} {{.missing}}", "[1 2 3] map[k:v n:-3] 1.5 true <no value> <no value>"),
        ("{{0.1}} {{1e6}} {{123456.0}} {{1e-5}} {{0.0001}} {{-0.0}} {{1e21}}", "0.1 1e+06 123456 1e-05 0.0001 -0 1e+21"),
    ];
    for (text, want) in cases {
        assert_eq!(ok(text, data()), *want, "template {text:?}");
    }
}

#[test]
fn printf_matches_go() {
    let cases: &[(&str, &str)] = &[
        (r#"{{printf "%.2f" 3.14159}}"#, "3.14"),
        (r#"{{printf "%5.1f|" 3.14159}}"#, "  3.1|"),
        (r#"{{printf "%-5d|" 42}}"#, "42   |"),
        (r#"{{printf "%05d" -42}}"#, "-0042"),
        (
            r#"{{printf "%x %X %o %b %O" 255 255 8 5 8}}"#,
            "ff FF 10 101 0o10",
        ),
        (r#"{{printf "%#x %#o %#b" 255 8 5}}"#, "0xff 010 0b101"),
        (r#"{{printf "%q" "a\"b\n"}}"#, r#""a\"b\n""#),
        (r#"{{printf "%#q" "ab"}}"#, "`ab`"),
        (r#"{{printf "%v %v" 1.0 1e21}}"#, "1 1e+21"),
        (r#"{{printf "%g" 1234567.0}}"#, "1.234567e+06"),
        (r#"{{printf "%g %g" 100000.0 0.00001}}"#, "100000 1e-05"),
        (r#"{{printf "%e" 1234.5678}}"#, "1.234568e+03"),
        (r#"{{printf "%.3e" 0.0}}"#, "0.000e+00"),
        (r#"{{printf "%.4g" 0.0001234}}"#, "0.0001234"),
        (r#"{{printf "%.4g" 0.00001234}}"#, "1.234e-05"),
        (
            r#"{{printf "%.4g %.4g %.4g" 100.0 12345.0 1.5}}"#,
            "100 1.234e+04 1.5",
        ),
        (r#"{{printf "%.3g" 1235.0}}"#, "1.24e+03"),
        (r#"{{printf "%s" 5}}"#, "%!s(int=5)"),
        (r#"{{printf "%d" "x"}}"#, "%!d(string=x)"),
        (r#"{{printf "%d"}}"#, "%!d(MISSING)"),
        (r#"{{printf "%d" 1 2}}"#, "1%!(EXTRA int=2)"),
        (
            r#"{{printf "%d %s" 1 2 "x" 4.5}}"#,
            "1 %!s(int=2)%!(EXTRA string=x, float64=4.5)",
        ),
        (r#"{{printf "%f" 5}}"#, "%!f(int=5)"),
        (r#"{{printf "%z" 5}}"#, "%!z(int=5)"),
        (r#"{{printf "%d" true}}"#, "%!d(bool=true)"),
        (r#"{{printf "%s" nil}}"#, "%!s(<nil>)"),
        (r#"{{printf "%6.2f%%" 12.3456}}"#, " 12.35%"),
        (r#"{{printf "%t" true}}"#, "true"),
        (
            r#"{{printf "%T %T %T %T %T" 1 1.5 "s" .a .m}}"#,
            "int float64 string []interface {} map[string]interface {}",
        ),
        (r#"{{printf "%c%c" 65 0x1F600}}"#, "A😀"),
        (r#"{{printf "%U %#U" 0x1F600 65}}"#, "U+1F600 U+0041 'A'"),
        (r#"{{printf "%q" 65}}"#, "'A'"),
        (
            r#"{{printf "%x %X % x %#x" "hi" "hi" "hi" "hi"}}"#,
            "6869 6869 68 69 0x6869",
        ),
        (
            r#"{{printf "%10.3s|%-4s|" "abcdef" "é"}}"#,
            "       abc|é   |",
        ),
        (r#"{{printf "%+d %+.1f % d" 5 2.0 7}}"#, "+5 +2.0  7"),
        (r#"{{printf "%*d|%-*d|" 5 42 4 1}}"#, "   42|1   |"),
        (r#"{{printf "%.*f" 1 3.14159}}"#, "3.1"),
        (
            r#"{{len (printf "%.100000f|%.100000e|%.100000g|%#.70000U" 0.1 0.1 0.1 65)}}"#,
            "270074",
        ),
        (r#"{{printf "%[2]d %[1]d" 1 2}}"#, "2 1"),
        (r#"{{printf "%[3]d" 1 2}}"#, "%!d(BADINDEX)"),
        (
            r#"{{printf "%v" .a}} {{printf "%v" .m}} {{printf "%d" .a}}"#,
            "[1 2 3] map[k:v n:-3] [1 2 3]",
        ),
        (
            r#"{{printf "%s" .a}}"#,
            "[%!s(int=1) %!s(int=2) %!s(int=3)]",
        ),
        (r#"{{printf "%v" nil}}"#, "<nil>"),
        (
            r#"{{printf "%.0f %.0f %.0f %.2f %.1f" 2.5 3.5 0.5 1.005 0.25}}"#,
            "2 4 0 1.00 0.2",
        ),
        (
            r#"{{printf "%08.3f|%-8.2f|%+08d" -3.14159 2.5 42}}"#,
            "-003.142|2.50    |+0000042",
        ),
        (
            r#"{{printf "%e %G %E" 1e-7 1e-10 123456.0}}"#,
            "1.000000e-07 1E-10 1.234560E+05",
        ),
        (r#"{{printf "%.0d|%.3d|%5.3d" 0 7 7}}"#, "|007|  007"),
        (r#"{{printf "%%|%5%|%"}}"#, "%|%|%!(NOVERB)"),
        (
            r#"{{printf "%.2f" .f}} {{printf "%v" .f}} {{printf "%5v|" .s}}"#,
            "1.50 1.5   str|",
        ),
        (
            r#"{{printf "%v|%s|%d" 1.5 "x" 3 | printf "%q"}}"#,
            r#""1.5|x|3""#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(ok(text, data()), *want, "template {text:?}");
    }
}

#[test]
fn float_formatting_edge_cases() {
    let cases: &[(f64, char, i32, &str)] = &[
        (0.0, 'g', -1, "0"),
        (-0.0, 'g', -1, "-0"),
        (1.0, 'g', -1, "1"),
        (0.1 + 0.2, 'g', -1, "0.30000000000000004"),
        (1234567.0, 'g', -1, "1.234567e+06"),
        (123456789.0, 'g', -1, "1.23456789e+08"),
        (1e100, 'g', -1, "1e+100"),
        (5e-324, 'g', -1, "5e-324"),
        (1.7976931348623157e308, 'g', -1, "1.7976931348623157e+308"),
        (f64::INFINITY, 'g', 4, "+Inf"),
        (f64::NEG_INFINITY, 'f', 2, "-Inf"),
        (f64::NAN, 'e', 2, "NaN"),
        (1.235, 'g', 4, "1.235"),
        (12.345, 'g', 4, "12.35"),
        (0.0, 'g', 4, "0"),
        (123456.0, 'g', 4, "1.235e+05"),
        (1e21, 'f', -1, "1000000000000000000000"),
        (0.000001, 'e', -1, "1e-06"),
        (9.999, 'g', 3, "10"),
        (99999.0, 'g', 4, "1e+05"),
    ];
    for (v, f, p, want) in cases {
        assert_eq!(format_float(*v, *f, *p), *want, "{v} {f} {p}");
    }
}

#[test]
fn missing_keys() {
    // interface{} maps: "<no value>" (default and zero); nested access
    // through a missing key under missingkey=zero is a nil interface.
    assert_eq!(ok("{{.nope}}", data()), "<no value>");
    assert_eq!(
        run("{{.nope.deeper}}", data()).unwrap_err(),
        r#"template: test:1:7: executing "test" at <.nope.deeper>: nil pointer evaluating interface {}.deeper"#
    );
    let mut t = Template::parse("test", "{{.nope.deeper}}").unwrap();
    t.set_missing_key(MissingKey::Invalid);
    assert_eq!(t.execute(&data(), &Env::default()).unwrap(), "<no value>");
    t.set_missing_key(MissingKey::Error);
    assert_eq!(
        t.execute(&data(), &Env::default()).unwrap_err(),
        r#"template: test:1:7: executing "test" at <.nope.deeper>: map has no entry for key "nope""#
    );
    // map[string]string (Prometheus' $labels): missing key is "".
    let labels = BTreeMap::from([("instance".to_string(), "a:1".to_string())]);
    let d = Value::map(BTreeMap::from([(
        "Labels".to_string(),
        Value::str_map(labels.clone()),
    )]));
    let t = Template::parse(
        "test",
        "[{{.Labels.nope}}][{{index .Labels \"nope\"}}][{{.Labels.instance}}]",
    )
    .unwrap();
    assert_eq!(t.execute_value(&d, &Env::default()).unwrap(), "[][][a:1]");
    let mut t = Template::parse("test", "[{{.Labels.nope}}]").unwrap();
    t.set_missing_key(MissingKey::Invalid);
    assert_eq!(
        t.execute_value(&d, &Env::default()).unwrap(),
        "[<no value>]"
    );
    // Nil data: "<no value>", or an error under missingkey=error.
    assert_eq!(ok("{{ .Foo }}", serde_json::Value::Null), "<no value>");
    let mut t = Template::parse("test", "{{ .Foo }}").unwrap();
    t.set_missing_key(MissingKey::Error);
    assert_eq!(
        t.execute(&serde_json::Value::Null, &Env::default())
            .unwrap_err(),
        r#"template: test:1:3: executing "test" at <.Foo>: nil data; no entry for key "Foo""#
    );
}

#[test]
fn parse_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "{{foo 1}}",
            r#"template: test:1: function "foo" not defined"#,
        ),
        ("{{$x}}", r#"template: test:1: undefined variable "$x""#),
        ("{{", "template: test:1: unclosed action"),
        ("{{ .x ", "template: test:1: unclosed action"),
        (
            "{{ .x\n\n",
            "template: test:3: unclosed action started at test:1",
        ),
        ("{{end}}", "template: test:1: unexpected {{end}}"),
        ("{{else}}", "template: test:1: unexpected {{else}}"),
        ("{{if 1}}", "template: test:1: unexpected EOF"),
        (
            "{{range}}{{end}}",
            "template: test:1: missing value for range",
        ),
        ("{{if}}{{end}}", "template: test:1: missing value for if"),
        ("{{}}", "template: test:1: missing value for command"),
        (
            "{{1 | 2}}",
            "template: test:1: non executable command in pipeline stage 2",
        ),
        (
            "a\n{{.x | nonexist}}",
            r#"template: test:2: function "nonexist" not defined"#,
        ),
        ("{{break}}", "template: test:1: {{break}} outside {{range}}"),
        (
            "{{range .}}{{else}}{{continue}}{{end}}",
            "template: test:1: {{continue}} outside {{range}}",
        ),
        (
            r#"{{define "a"}}x{{end}}{{define "a"}}y{{end}}"#,
            r#"template: test:1: template: multiple definition of template "a""#,
        ),
        ("{{/* x", "template: test:1: unclosed comment"),
        (
            "{{/* x */ 1}}",
            "template: test:1: comment ends before closing delimiter",
        ),
        ("{{\"abc}}", "template: test:1: unterminated quoted string"),
        (
            "{{`abc}}",
            "template: test:1: unterminated raw quoted string",
        ),
        ("{{ 3x }}", r#"template: test:1: bad number syntax: "3x""#),
        (
            "{{ 1 ) }}",
            r#"template: test:1: unexpected ")" in command"#,
        ),
        ("{{ (1 }}", "template: test:1: unclosed left paren"),
        (
            "{{ .x @ }}",
            "template: test:1: unexpected \"@\" in operand",
        ),
        (
            "{{ \u{a0}}}",
            "template: test:1: unrecognized character in action: U+00A0",
        ),
        (
            "{{ .x.1 }}",
            "template: test:1: unexpected \".1\" in operand",
        ),
        (
            "{{ \"x\".y }}",
            r#"template: test:1: unexpected . after term "\"x\"""#,
        ),
        (
            "{{ $x := 1 }}{{ $x = }}",
            "template: test:1: missing value for command",
        ),
        (
            "{{ range $a, $b, $c := . }}{{end}}",
            "template: test:1: too many declarations in range",
        ),
        (
            "{{ with $a, $b := . }}{{end}}",
            "template: test:1: too many declarations in with",
        ),
        (
            "{{if 1}}{{else}}{{else}}{{end}}",
            "template: test:1: expected end; found {{else}}",
        ),
        (
            "{{template .x}}",
            r#"template: test:1: unexpected ".x" in template clause"#,
        ),
        (
            "{{define \"a\"}}{{else}}{{end}}",
            "template: test:1: unexpected {{else}} in define clause",
        ),
        ("{{ 08 }}", r#"template: test:1: integer overflow: "08""#),
        (
            "{{ 99999999999999999999 }}",
            r#"template: test:1: integer overflow: "99999999999999999999""#,
        ),
        ("{{ \"\\q\" }}", "template: test:1: invalid syntax"),
    ];
    for (text, want) in cases {
        match Template::parse("test", text) {
            Ok(_) => panic!("{text:?}: parsed, want error {want}"),
            Err(e) => assert_eq!(e, *want, "template {text:?}"),
        }
    }
    // Nesting is bounded.
    let deep = "{{".to_string() + &"(".repeat(200) + "1" + &")".repeat(200) + "}}";
    assert_eq!(
        Template::parse("t", &deep).unwrap_err(),
        "template: t:1: max expression depth exceeded"
    );
    let deep_if = "{{if 1}}".repeat(150) + &"{{end}}".repeat(150);
    assert_eq!(
        Template::parse("t", &deep_if).unwrap_err(),
        "template: t:1: max expression depth exceeded"
    );
    let ok_if = "{{if 1}}".repeat(90) + "x" + &"{{end}}".repeat(90);
    assert_eq!(
        Template::parse("t", &ok_if)
            .unwrap()
            .execute(&json!({}), &Env::default())
            .unwrap(),
        "x"
    );
}

#[test]
fn exec_errors() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{{template "nope"}}"#,
            r#"template: test:1:11: executing "test" at <{{template "nope"}}>: template "nope" not defined"#,
        ),
        (
            "{{ nil }}",
            r#"template: test:1:3: executing "test" at <nil>: nil is not a command"#,
        ),
        (
            "{{ .s.x }}",
            r#"template: test:1:5: executing "test" at <.s.x>: can't evaluate field x in type interface {}"#,
        ),
        (
            "{{ $x := .s }}{{ $x.y }}",
            r#"template: test:1:19: executing "test" at <$x.y>: can't evaluate field y in type string"#,
        ),
        (
            "{{ humanize 1 2 }}",
            r#"template: test:1:3: executing "test" at <humanize>: wrong number of args for humanize: want 1 got 2"#,
        ),
        (
            "{{ toUpper 1 }}",
            r#"template: test:1:11: executing "test" at <1>: expected string; found 1"#,
        ),
        (
            "{{ 5 | toUpper }}",
            r#"template: test:1:7: executing "test" at <toUpper>: wrong type for value; expected string; got int"#,
        ),
        (
            "{{ .missing | toUpper }}",
            r#"template: test:1:14: executing "test" at <toUpper>: invalid value; expected string"#,
        ),
        (
            "{{ eq 1.5 1 }}",
            r#"template: test:1:3: executing "test" at <eq 1.5 1>: error calling eq: incompatible types for comparison"#,
        ),
        (
            "{{ lt .a 1 }}",
            r#"template: test:1:3: executing "test" at <lt .a 1>: error calling lt: invalid type for comparison"#,
        ),
        (
            "{{ index .a 5 }}",
            r#"template: test:1:3: executing "test" at <index .a 5>: error calling index: index out of range: 5"#,
        ),
        (
            "{{ index 1 1 }}",
            r#"template: test:1:3: executing "test" at <index 1 1>: error calling index: can't index item of type int"#,
        ),
        (
            "{{ len 3 }}",
            r#"template: test:1:3: executing "test" at <len 3>: error calling len: len of type int"#,
        ),
        (
            "{{ slice .a 2 1 }}",
            r#"template: test:1:3: executing "test" at <slice .a 2 1>: error calling slice: invalid slice index: 2 > 1"#,
        ),
        (
            "{{ \"x\" 1 }}",
            r#"template: test:1:3: executing "test" at <"x">: can't give argument to non-function "x""#,
        ),
        (
            "{{ .s | .m }}",
            r#"template: test:1:8: executing "test" at <.m>: m is not a method but has arguments"#,
        ),
        (
            "{{ range .s }}{{end}}",
            r#"template: test:1:9: executing "test" at <{{range .s}}{{end}}>: range can't iterate over str"#,
        ),
        (
            "{{ 18446744073709551615 }}",
            r#"template: test:1:3: executing "test" at <18446744073709551615>: 18446744073709551615 overflows int"#,
        ),
        (
            r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}"#,
            r#"template: test:1:25: executing "r" at <{{template "r" .}}>: exceeded maximum template depth (300)"#,
        ),
        (
            r#"{{define "x"}}{{.nope.x}}{{end}}{{template "x" .}}"#,
            r#"template: test:1:21: executing "x" at <.nope.x>: nil pointer evaluating interface {}.x"#,
        ),
        (
            "line1\n  {{ .s.x }}",
            r#"template: test:2:7: executing "test" at <.s.x>: can't evaluate field x in type interface {}"#,
        ),
        (
            "{{ $x := 1 }}{{ $x 2 }}",
            r#"template: test:1:16: executing "test" at <$x>: can't give argument to non-function $x"#,
        ),
    ];
    for (text, want) in cases {
        match run(text, data()) {
            Ok(s) => panic!("{text:?}: got {s:?}, want error {want}"),
            Err(e) => assert_eq!(e, *want, "template {text:?}"),
        }
    }
}

#[test]
fn deep_recursion_does_not_overflow_a_small_stack() {
    // Template recursion and nested constructs up to the limits, on a
    // thread with tokio's default 2 MiB stack (an unoptimised build needs
    // about 0.8 MiB at the limit).
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let nest = "{{if 1}}{{with $}}{{range $}}".repeat(30)
                + "{{(((len $)))}}"
                + &"{{end}}{{end}}{{end}}".repeat(30);
            let text = format!(
                r#"{{{{define "r"}}}}{nest}{{{{template "r" $}}}}{{{{end}}}}{{{{template "r" .}}}}"#
            );
            let t = Template::parse("t", &text).unwrap();
            t.execute(&json!([1]), &Env::default())
        })
        .unwrap();
    let r = h.join().unwrap();
    assert!(r
        .unwrap_err()
        .contains("exceeded maximum template depth (300)"));
}

struct Prom {
    samples: Vec<(BTreeMap<String, String>, f64)>,
}

impl Prom {
    fn new() -> Prom {
        Prom {
            samples: Vec::new(),
        }
    }

    fn with(samples: &[(&[(&str, &str)], f64)]) -> Prom {
        Prom {
            samples: samples
                .iter()
                .map(|(l, v)| {
                    (
                        l.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        *v,
                    )
                })
                .collect(),
        }
    }

    fn expand(&self, text: &str, input: Value) -> Result<String, String> {
        let samples = self.samples.clone();
        let q = move |_: &str| -> Result<Samples, String> { Ok(samples.clone()) };
        let env = Env {
            query: Some(&q),
            external_url: "http://testhost:9090/path/prefix".into(),
            path_prefix: "/path/prefix".into(),
        };
        expand("test", text, &input, &env)
    }
}

fn floats(v: &[f64]) -> Value {
    Value::typed_list("[]float64", v.iter().map(|f| Value::Float(*f)).collect())
}

fn strs(v: &[&str]) -> Value {
    Value::typed_list("[]string", v.iter().map(|s| Value::str(s)).collect())
}

fn ints(v: &[i64]) -> Value {
    Value::typed_list("[]int64", v.iter().map(|i| Value::Int(*i)).collect())
}

fn uints(v: &[u64]) -> Value {
    Value::typed_list("[]uint64", v.iter().map(|i| Value::Uint(*i)).collect())
}

/// The cases of Prometheus' template/template_test.go (text mode).
#[test]
fn prometheus_template_test_cases() {
    let p = Prom::new();
    let nil = Value::Nil;
    let ok_cases: Vec<(&str, Value, &str)> = vec![
        ("plain text", nil.clone(), "plain text"),
        ("{{ 1 }}", nil.clone(), "1"),
        ("{{ \"<b>\" }}", nil.clone(), "<b>"),
        ("{{ \"<b>\" | safeHtml }}", nil.clone(), "<b>"),
        (r#"{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}"#, nil.clone(), "1 2"),
        ("{{ \"foo.example.com\" | stripPort }}", nil.clone(), "foo.example.com"),
        ("{{ \"foo.example.com:12345\" | stripPort }}", nil.clone(), "foo.example.com"),
        ("{{ \"192.0.2.1\" | stripPort }}", nil.clone(), "192.0.2.1"),
        ("{{ \"192.0.2.1:12345\" | stripPort }}", nil.clone(), "192.0.2.1"),
        ("{{ \"2001:0DB8::1\" | stripPort }}", nil.clone(), "2001:0DB8::1"),
        ("{{ \"[2001:0DB8::1]:12345\" | stripPort }}", nil.clone(), "2001:0DB8::1"),
        ("{{ \"[2001:0DB8::1]::12345\" | stripPort }}", nil.clone(), "[2001:0DB8::1]::12345"),
        ("{{ .Foo }}", nil.clone(), "<no value>"),
        (r#"{{ reReplaceAll "(a)b" "x$1" "ab" }}"#, nil.clone(), "xa"),
        ("{{ range . }}{{ humanize . }}:{{ end }}", floats(&[0.0, 1.0, 1234567.0, 0.12]), "0:1:1.235M:120m:"),
        ("{{ range . }}{{ humanize . }}:{{ end }}", strs(&["0.0", "1.0", "1234567.0", ".12"]), "0:1:1.235M:120m:"),
        ("{{ range . }}{{ humanize . }}:{{ end }}", ints(&[0, -1, 1, 1234567, i64::MAX]), "0:-1:1:1.235M:9.223E:"),
        ("{{ range . }}{{ humanize . }}:{{ end }}", uints(&[0, 1, 1234567, u64::MAX]), "0:1:1.235M:18.45E:"),
        ("{{ range . }}{{ humanize1024 . }}:{{ end }}", floats(&[0.0, 1.0, 1048576.0, 0.12]), "0:1:1Mi:0.12:"),
        ("{{ range . }}{{ humanize1024 . }}:{{ end }}", strs(&["0.0", "1.0", "1048576.0", ".12"]), "0:1:1Mi:0.12:"),
        ("{{ range . }}{{ humanize1024 . }}:{{ end }}", ints(&[0, -1, 1, 1234567, i64::MAX]), "0:-1:1:1.177Mi:8Ei:"),
        ("{{ range . }}{{ humanize1024 . }}:{{ end }}", uints(&[0, 1, 1234567, u64::MAX]), "0:1:1.177Mi:16Ei:"),
        (
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            floats(&[0.0, 1.0, 60.0, 3600.0, 86400.0, 86400.0 + 3600.0, -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0), 899.99]),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:",
        ),
        ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", strs(&["0", "1", "60", "3600", "86400"]), "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"),
        (
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            floats(&[0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345]),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
        ),
        (
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            strs(&[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
        ),
        ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", ints(&[0, -1, 1, 1234567]), "0s:-1s:1s:14d 6h 56m 7s:"),
        ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", uints(&[0, 1, 1234567]), "0s:1s:14d 6h 56m 7s:"),
        (
            "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
            floats(&[f64::INFINITY, f64::NEG_INFINITY, f64::NAN]),
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
        ),
        (
            "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
            strs(&["+Inf", "-Inf", "NaN"]),
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
        ),
        (
            "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
            nil.clone(),
            "-22.22%:0%:12.35%:123.5%",
        ),
        ("{{ range . }}{{ humanizePercentage . }}:{{ end }}", ints(&[0, -1, 1, 1234567, i64::MAX]), "0%:-100%:100%:1.235e+08%:9.223e+20%:"),
        ("{{ range . }}{{ humanizePercentage . }}:{{ end }}", uints(&[0, 1, 1234567, u64::MAX]), "0%:100%:1.235e+08%:1.845e+21%:"),
        (
            r#"{{ "-0.22222" | humanizePercentage }}:{{ "0.0" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}:{{ "1.23456" | humanizePercentage }}"#,
            nil.clone(),
            "-22.22%:0%:12.35%:123.5%",
        ),
        (
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            ints(&[0, -1, 1, 1234567, 9223372036]),
            "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
        ),
        (
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            uints(&[0, 1, 1234567, 9223372036]),
            "1970-01-01 00:00:00 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
        ),
        ("{{ 1435065584.128 | humanizeTimestamp }}", nil.clone(), "2015-06-23 13:19:44.128 +0000 UTC"),
        (r#"{{ "1435065584.128" | humanizeTimestamp }}"#, nil.clone(), "2015-06-23 13:19:44.128 +0000 UTC"),
        (r#"{{ (1435065584.128 | toTime).Format "2006" }}"#, nil.clone(), "2015"),
        (r#"{{ ("1435065584.128" | toTime).Format "2006" }}"#, nil.clone(), "2015"),
        ("{{ \"aa bb CC\" | title }}", nil.clone(), "Aa Bb CC"),
        ("{{ \"aa bb CC\" | toUpper }}", nil.clone(), "AA BB CC"),
        ("{{ \"aA bB CC\" | toLower }}", nil.clone(), "aa bb cc"),
        ("{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}", nil.clone(), "true false"),
        ("{{ graphLink \"up\" }}", nil.clone(), "/graph?g0.expr=up&g0.tab=0"),
        ("{{ tableLink \"up\" }}", nil.clone(), "/graph?g0.expr=up&g0.tab=1"),
        ("{{ pathPrefix }}", nil.clone(), "/path/prefix"),
        ("{{ externalURL }}", nil.clone(), "http://testhost:9090/path/prefix"),
        ("{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}", nil.clone(), "3720.01"),
        ("{{ \"foo.example.com\" | stripDomain }}", nil.clone(), "foo"),
        ("{{ \"foo.example.com:12345\" | stripDomain }}", nil.clone(), "foo:12345"),
        ("{{ \"192.0.2.1\" | stripDomain }}", nil.clone(), "192.0.2.1"),
        ("{{ \"192.0.2.1:12345\" | stripDomain }}", nil.clone(), "192.0.2.1:12345"),
        ("{{ \"2001:0DB8::1\" | stripDomain }}", nil.clone(), "2001:0DB8::1"),
        ("{{ \"[2001:0DB8::1]:12345\" | stripDomain }}", nil.clone(), "[2001:0DB8::1]:12345"),
        ("{{ \"[2001:0DB8::1]::12345\" | stripDomain }}", nil.clone(), "[2001:0DB8::1]::12345"),
    ];
    for (text, input, want) in ok_cases {
        assert_eq!(p.expand(text, input).unwrap(), want, "template {text:?}");
    }

    let err_cases: Vec<(&str, Value, &str)> = vec![
        ("{{ \u{a0}}}", nil.clone(), "error parsing template test: template: test:1: unrecognized character in action: U+00A0"),
        ("{{", nil.clone(), "error parsing template test: template: test:1: unclosed action"),
        (
            "{{ query \"missing\" | first }}",
            nil.clone(),
            r#"error executing template test: template: test:1:21: executing "test" at <first>: error calling first: first() called on vector with no elements"#,
        ),
        (
            "{{ (query \"missing\").banana }}",
            nil.clone(),
            r#"error executing template test: template: test:1:10: executing "test" at <"missing">: can't evaluate field banana in type template.queryResult"#,
        ),
        (
            r#"{{ humanize "one" }}"#,
            nil.clone(),
            r#"error executing template test: template: test:1:3: executing "test" at <humanize "one">: error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax"#,
        ),
        (
            r#"{{ humanize1024 "one" }}"#,
            nil.clone(),
            r#"error executing template test: template: test:1:3: executing "test" at <humanize1024 "one">: error calling humanize1024: strconv.ParseFloat: parsing "one": invalid syntax"#,
        ),
        (
            r#"{{ humanizeDuration "one" }}"#,
            nil.clone(),
            r#"error executing template test: template: test:1:3: executing "test" at <humanizeDuration "one">: error calling humanizeDuration: strconv.ParseFloat: parsing "one": invalid syntax"#,
        ),
        (
            r#"{{ "one" | humanizePercentage }}"#,
            nil.clone(),
            r#"error executing template test: template: test:1:11: executing "test" at <humanizePercentage>: error calling humanizePercentage: strconv.ParseFloat: parsing "one": invalid syntax"#,
        ),
        (
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            ints(&[i64::MIN, i64::MAX]),
            r#"error executing template test: template: test:1:16: executing "test" at <humanizeTimestamp .>: error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64"#,
        ),
        (
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            uints(&[u64::MAX]),
            r#"error executing template test: template: test:1:16: executing "test" at <humanizeTimestamp .>: error calling humanizeTimestamp: 1.8446744073709552e+19 cannot be represented as a nanoseconds timestamp since it overflows int64"#,
        ),
        (
            r#"{{ humanize true }}"#,
            nil.clone(),
            r#"error executing template test: template: test:1:3: executing "test" at <humanize true>: error calling humanize: can't convert bool to float"#,
        ),
        (
            r#"{{ parseDuration "1x" }}"#,
            nil.clone(),
            r#"error executing template test: template: test:1:3: executing "test" at <parseDuration "1x">: error calling parseDuration: unknown unit "x" in duration "1x""#,
        ),
        (
            r#"{{ toTime "NaN" }}"#,
            nil.clone(),
            r#"error executing template test: template: test:1:3: executing "test" at <toTime "NaN">: error calling toTime: value is NaN or Inf"#,
        ),
    ];
    for (text, input, want) in err_cases {
        assert_eq!(
            p.expand(text, input).unwrap_err(),
            want,
            "template {text:?}"
        );
    }
}

#[test]
fn prometheus_query_functions() {
    let one = Prom::with(&[(&[], 1.5)]);
    assert_eq!(
        one.expand("{{ query \"1.5\" | first | value }}", Value::Nil)
            .unwrap(),
        "1.5"
    );
    let p = Prom::with(&[(
        &[
            ("__name__", "metric"),
            ("instance", "a"),
            ("__value__", "sv"),
        ],
        11.0,
    )]);
    for (text, want) in [
        ("{{ query \"metric{instance='a'}\" | first | value }}", "11"),
        (
            "{{ query \"metric{instance='a'}\" | first | label \"instance\" }}",
            "a",
        ),
        ("{{ query \"metric\" | first | strvalue }}", "sv"),
        (
            "{{ query \"metric{instance='a'}\" | first | label \"foo\" }}",
            "",
        ),
        (
            "{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}",
            "",
        ),
        (
            "{{ with query \"metric\" }}{{ . | first | value | humanize }}{{ end }}",
            "11",
        ),
        ("{{ len (query \"metric\") }}", "1"),
        (
            "{{ first (query \"m\") }}",
            "{map[__name__:metric __value__:sv instance:a] 11}",
        ),
        (
            "{{ printf \"%v\" (query \"m\" | first) }}",
            "&{map[__name__:metric __value__:sv instance:a] 11}",
        ),
    ] {
        assert_eq!(
            p.expand(text, Value::Nil).unwrap(),
            want,
            "template {text:?}"
        );
    }
    let p = Prom::with(&[
        (&[("__name__", "metric"), ("instance", "b")], 21.0),
        (&[("__name__", "metric"), ("instance", "a")], 11.0),
    ]);
    assert_eq!(
        p.expand("{{ range query \"metric\" | sortByLabel \"instance\" }}{{.Labels.instance}}:{{.Value}}: {{end}}", Value::Nil)
            .unwrap(),
        "a:11: b:21: "
    );
    assert_eq!(
        p.expand(
            "{{ range $i, $s := query \"m\" }}{{ $i }}{{ label \"instance\" $s }}{{ end }}",
            Value::Nil
        )
        .unwrap(),
        "0b1a"
    );
    // Type checks as in Go.
    assert_eq!(
        p.expand("{{ first \"x\" }}", Value::Nil).unwrap_err(),
        r#"error executing template test: template: test:1:9: executing "test" at <"x">: can't handle "x" for arg of type template.queryResult"#
    );
    assert_eq!(
        p.expand("{{ (query \"m\" | first).Foo }}", Value::Nil)
            .unwrap_err(),
        r#"error executing template test: template: test:1:16: executing "test" at <first>: can't evaluate field Foo in type *template.sample"#
    );
    // Query errors and a missing query function.
    let q = |_: &str| -> Result<Samples, String> { Err("bad query".into()) };
    let env = Env {
        query: Some(&q),
        ..Env::default()
    };
    assert_eq!(
        expand("t", "{{ query \"x\" }}", &Value::Nil, &env).unwrap_err(),
        r#"error executing template t: template: t:1:3: executing "t" at <query "x">: error calling query: bad query"#
    );
    assert!(
        expand("t", "{{ query \"x\" }}", &Value::Nil, &Env::default())
            .unwrap_err()
            .contains("no query function")
    );
}

#[test]
fn alert_templates() {
    let labels = BTreeMap::from([
        ("alertname".to_string(), "HighLoad".to_string()),
        ("instance".to_string(), "host.example.com:9100".to_string()),
    ]);
    let ext = BTreeMap::from([("cluster".to_string(), "eu1".to_string())]);
    let env = Env {
        external_url: "http://prom:9090".into(),
        ..Env::default()
    };
    let exp = |text: &str, value: f64| {
        expand_alert_template(
            "__alert_HighLoad",
            text,
            &labels,
            &ext,
            "http://prom:9090",
            value,
            &env,
        )
    };
    assert_eq!(
        exp("{{ $labels.instance }} is {{ $value }}", 1234567.0).unwrap(),
        "host.example.com:9100 is 1.234567e+06"
    );
    assert_eq!(exp("[{{ $labels.missing }}]", 1.0).unwrap(), "[]");
    assert_eq!(
        exp(
            "{{ $externalLabels.cluster }} {{ $externalURL }} {{ .ExternalURL }}",
            1.0
        )
        .unwrap(),
        "eu1 http://prom:9090 http://prom:9090"
    );
    assert_eq!(exp("{{ humanize $value }}", 1234567.0).unwrap(), "1.235M");
    assert_eq!(
        exp("{{ printf \"%.2f\" $value }}", 1234567.0).unwrap(),
        "1234567.00"
    );
    assert_eq!(
        exp("{{ $value }} {{ .Value }}", f64::NAN).unwrap(),
        "NaN NaN"
    );
    assert_eq!(exp("{{ $value }}", f64::INFINITY).unwrap(), "+Inf");
    assert_eq!(exp("{{ $value }}", 0.1).unwrap(), "0.1");
    assert_eq!(
        exp("{{ if gt $value 1.0 }}high{{ else }}low{{ end }}", 2.0).unwrap(),
        "high"
    );
    assert_eq!(
        exp("{{ .Labels.instance | stripPort | stripDomain }}", 0.0).unwrap(),
        "host"
    );
    assert_eq!(
        exp(
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
            0.0
        )
        .unwrap(),
        "alertname=HighLoad;instance=host.example.com:9100;"
    );
    assert_eq!(
        exp("{{ $labels }}", 0.0).unwrap(),
        "map[alertname:HighLoad instance:host.example.com:9100]"
    );
    assert_eq!(
        exp("{{ $value | humanize | nope }}", 1.0).unwrap_err(),
        r#"error parsing template __alert_HighLoad: template: __alert_HighLoad:1: function "nope" not defined"#
    );
    let col = ALERT_TEMPLATE_PREAMBLE.len() + 3;
    assert_eq!(
        exp("{{ humanize \"x\" }}", 1.0).unwrap_err(),
        format!(
            r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{col}: executing "__alert_HighLoad" at <humanize "x">: error calling humanize: strconv.ParseFloat: parsing "x": invalid syntax"#
        )
    );
    let col = ALERT_TEMPLATE_PREAMBLE.len() + 3;
    assert_eq!(
        exp("{{ gt $value 1 }}", 1.0).unwrap_err(),
        format!(
            r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{col}: executing "__alert_HighLoad" at <gt $value 1>: error calling gt: incompatible types for comparison"#
        )
    );
    assert_eq!(
        exp("{{ .Foo }}", 1.0).unwrap_err(),
        format!(
            r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{col}: executing "__alert_HighLoad" at <.Foo>: can't evaluate field Foo in type {T_ALERT_DATA}"#
        )
    );
    assert_eq!(
        exp("{{ .Labels.instance.x }}", 1.0).unwrap_err(),
        format!(
            r#"error executing template __alert_HighLoad: template: __alert_HighLoad:1:{}: executing "__alert_HighLoad" at <.Labels.instance.x>: can't evaluate field x in type string"#,
            col + 7
        )
    );
    // Multi-line annotations keep their layout; trimming works across lines.
    assert_eq!(
        exp("Instance {{ $labels.instance }}\n{{- if gt $value 10.0 }} is overloaded{{ end }}\nvalue: {{ $value | printf \"%.1f\" }}", 12.25).unwrap(),
        "Instance host.example.com:9100 is overloaded\nvalue: 12.2"
    );
}

#[test]
fn alertmanager_dialect() {
    let alerts = Value::typed_list(
        "template.Alerts",
        vec![
            Value::structure(
                "template.Alert",
                vec![
                    ("Status".into(), Value::str("firing")),
                    (
                        "Labels".into(),
                        Value::kv(BTreeMap::from([
                            ("alertname".into(), "A".into()),
                            ("a".into(), "1".into()),
                        ])),
                    ),
                    ("StartsAt".into(), Value::time(1435065584, 128_000_000)),
                ],
            ),
            Value::structure(
                "template.Alert",
                vec![
                    ("Status".into(), Value::str("resolved")),
                    (
                        "Labels".into(),
                        Value::kv(BTreeMap::from([("alertname".into(), "B".into())])),
                    ),
                    ("StartsAt".into(), Value::time(0, 0)),
                ],
            ),
        ],
    );
    let common = Value::kv(BTreeMap::from([
        ("zone".into(), "z1".into()),
        ("alertname".into(), "A".into()),
        ("job".into(), "node".into()),
    ]));
    let d = Value::structure(
        "*template.Data",
        vec![
            ("Alerts".into(), alerts),
            ("CommonLabels".into(), common.clone()),
            (
                "GroupLabels".into(),
                Value::kv(BTreeMap::from([("job".into(), "node".into())])),
            ),
        ],
    );
    let run_am = |text: &str| -> Result<String, String> {
        let t = Template::parse_dialect("am", text, Dialect::Alertmanager)?;
        t.execute_value(&d, &Env::default())
    };
    for (text, want) in [
        ("{{ title \"aa bb CC o'neil\" }}", "Aa Bb Cc O'neil"),
        ("{{ .CommonLabels }}", "alertname=A, job=node, zone=z1"),
        ("{{ range .CommonLabels.SortedPairs }}{{ .Name }}:{{ .Value }} {{ end }}", "alertname:A job:node zone:z1 "),
        ("{{ .CommonLabels.Names }} {{ .CommonLabels.Values }}", "[alertname job zone] [A node z1]"),
        ("{{ .CommonLabels.Remove .GroupLabels.Names }}", "alertname=A, zone=z1"),
        ("{{ join \", \" .CommonLabels.Values }}", "A, node, z1"),
        ("{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }}", "1/1"),
        ("{{ range .Alerts.Firing }}{{ .Labels.alertname }} since {{ .StartsAt }}{{ end }}", "A since 2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ range .Alerts }}{{ .StartsAt.Format \"Jan _2 15:04:05.000\" }}|{{ end }}", "Jun 23 13:19:44.128|Jan  1 00:00:00.000|"),
        ("{{ range .Alerts }}{{ date \"2006-01-02T15:04:05Z07:00 Monday\" .StartsAt }}|{{ end }}", "2015-06-23T13:19:44Z Tuesday|1970-01-01T00:00:00Z Thursday|"),
        ("{{ .CommonLabels.missing }}|{{ .CommonLabels.job }}", "|node"),
        ("{{ toJson .CommonLabels }}", r#"{"alertname":"A","job":"node","zone":"z1"}"#),
        ("{{ toJson (stringSlice \"a<b\" \"c\") }}", r#"["a\u003cb","c"]"#),
        ("{{ trimSpace \"  x \\n\" }}|{{ urlUnescape \"a%20b+c\" }}", "x|a b c"),
        ("{{ humanizeDuration 3661 }}", "1h 1m 1s"),
        ("{{ reReplaceAll \"\\\\d+\" \"#\" \"a1b22\" }}", "a#b#"),
        ("{{ match \"^\\\\w+$\" \"héllo\" }} {{ match \"^\\\\w+$\" \"hello_1\" }}", "false true"),
        ("{{ (index .Alerts 0).StartsAt.Unix }}", "1435065584"),
    ] {
        assert_eq!(run_am(text).unwrap(), want, "template {text:?}");
    }
    assert_eq!(
        run_am("{{ humanize 1 }}").unwrap_err(),
        r#"template: am:1: function "humanize" not defined"#
    );
    assert_eq!(
        run_am("{{ reReplaceAll \"(\" \"\" \"\" }}").unwrap_err(),
        "template: am:1:3: executing \"am\" at <reReplaceAll \"(\" \"\" \"\">: error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: unclosed group: `(`"
    );
    assert!(Template::parse("p", "{{ join \",\" . }}")
        .unwrap_err()
        .contains(r#"function "join" not defined"#));
}

#[test]
fn template_sets() {
    let mut t =
        Template::parse_dialect("main", r#"{{ template "x" . }}"#, Dialect::Alertmanager).unwrap();
    t.add("lib.tmpl", r#"{{ define "x" }}lib:{{ .s }}{{ end }}"#)
        .unwrap();
    assert_eq!(t.execute(&data(), &Env::default()).unwrap(), "lib:str");
    // A later non-empty definition replaces an earlier one.
    t.add("override.tmpl", r#"{{ define "x" }}override{{ end }}"#)
        .unwrap();
    assert_eq!(t.execute(&data(), &Env::default()).unwrap(), "override");
    assert_eq!(
        t.execute_template("x", &Value::Nil, &Env::default())
            .unwrap(),
        "override"
    );
    assert_eq!(
        t.template_names(),
        vec!["lib.tmpl", "main", "override.tmpl", "x"]
    );
    assert_eq!(
        t.execute_template("nope", &Value::Nil, &Env::default())
            .unwrap_err(),
        r#"template: no template "nope" associated with template "main""#
    );
    // Errors inside a definition name the file that defined it.
    t.add("bad.tmpl", "\n{{ define \"y\" }}{{ .a.b }}{{ end }}")
        .unwrap();
    assert_eq!(
        t.execute_template("y", &Value::from(&data()), &Env::default())
            .unwrap_err(),
        r#"template: bad.tmpl:2:21: executing "y" at <.a.b>: can't evaluate field b in type interface {}"#
    );
}

#[test]
fn time_and_duration_formatting() {
    let t = Time {
        secs: 1435065584,
        nanos: 128_000_000,
    };
    for (layout, want) in [
        (
            "2006-01-02 15:04:05.999999999 -0700 MST",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        (time_layout_rfc3339(), "2015-06-23T13:19:44Z"),
        ("Mon Jan _2 3:04:05 PM 06", "Tue Jun 23 1:19:44 PM 15"),
        (
            "Monday, January 2 002 __2 .000000 ,999 Z07:00 -07:00",
            "Tuesday, June 23 174 174 .128000 ,128 Z +00:00",
        ),
        ("_2006", "_2015"),
        ("Janu", "Janu"),
    ] {
        assert_eq!(go_time_format(t, layout), want, "{layout}");
    }
    assert_eq!(
        time_string(Time {
            secs: ZERO_TIME_SECS,
            nanos: 0
        }),
        "0001-01-01 00:00:00 +0000 UTC"
    );
    assert_eq!(
        time_string(Time {
            secs: -1,
            nanos: 500_000_000
        }),
        "1969-12-31 23:59:59.5 +0000 UTC"
    );
    for (d, want) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (100_000_000, "100ms"),
        (1_500_000_000, "1.5s"),
        (3_661_000_000_000, "1h1m1s"),
        (-90_000_000_000, "-1m30s"),
        (3_600_000_000_000, "1h0m0s"),
    ] {
        assert_eq!(format_duration(d), want);
    }
    assert_eq!(
        parse_model_duration("1y2w3d4h5m6s7ms").unwrap(),
        ((365 + 14 + 3) * 86400 + 4 * 3600 + 5 * 60 + 6) * 1_000_000_000 + 7_000_000
    );
    assert_eq!(
        parse_model_duration("1m1h").unwrap_err(),
        r#"not a valid duration string: "1m1h""#
    );
    assert_eq!(
        parse_model_duration("").unwrap_err(),
        "empty duration string"
    );
    assert_eq!(parse_model_duration("0").unwrap(), 0);
}

fn time_layout_rfc3339() -> &'static str {
    "2006-01-02T15:04:05Z07:00"
}

#[test]
fn helpers() {
    assert_eq!(quote("a\u{7}\u{1}é\u{200b}😀\\"), r#""a\a\x01é\u200b😀\\""#);
    assert_eq!(
        title_case("hello_world foo-bar x.y 1st", false),
        "Hello_world Foo-Bar X.y 1st"
    );
    assert_eq!(
        split_host_port("[::1]:80").unwrap(),
        ("::1".to_string(), "80".to_string())
    );
    assert!(split_host_port("a:b:c").is_err());
    assert_eq!(go_parse_float("1e400").unwrap_err(), "value out of range");
    assert_eq!(go_parse_float("0x10").unwrap_err(), "invalid syntax");
    assert_eq!(go_parse_float("-Inf").unwrap(), f64::NEG_INFINITY);
    assert_eq!(unquote(r#""\u00e9\t""#).unwrap(), "é\t");
    assert!(unquote(r#""\'""#).is_err());
    assert_eq!(unquote("'\\''").unwrap(), "'");
}

#[test]
fn templates_and_values_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<Value>();
}

#[test]
fn json_data_conversion() {
    let v =
        Value::from(&json!({"i": 1, "u": u64::MAX, "f": 1.0, "s": "x", "l": [null], "b": false}));
    let t = Template::parse("t", "{{printf \"%T %T %T %T %T %T\" .i .u .f .s .l .b}}").unwrap();
    assert_eq!(
        t.execute_value(&v, &Env::default()).unwrap(),
        "int uint64 float64 string []interface {} bool"
    );
}

#[test]
fn fuzz_inputs_do_not_panic() {
    let inputs: &[&str] = &[
        "",
        "{{",
        "}}",
        "{{-}}",
        "{{- -}}",
        "{{ - }}",
        "{{ .a.b.c.d }}",
        "{{range $i, $x := .}}{{$i}}{{$x}}{{end}}",
        "{{range 1000000000}}x{{end}}",
        "{{$x := \"ab\"}}{{range 100}}{{$x = printf \"%s%s\" $x $x}}{{end}}",
        "{{define \"a\"}}{{template \"a\" .}}{{template \"a\" .}}{{end}}{{template \"a\"}}",
        "{{printf \"%*d\" 1000000 1}}{{printf \"%.*f\" 999999 1.0}}",
        "{{printf \"%[0]d %[-1]d %[99]d %[x]d %[1\" 1}}",
        "{{printf \"%!\" }}{{printf \"%\"}}{{printf \"%-+# 0123.456v\" 1}}",
        "{{index . \"a\" 99}}{{slice \"héllo\" 1 2}}{{slice . 1}}",
        "{{reReplaceAll \"((((\" \"\" \"\"}}{{match \"[\" \"\"}}{{match \"a{100000}\" \"\"}}",
        "{{humanizeTimestamp 1e300}}{{toTime -1e300}}{{humanize \"1e400\"}}",
        "{{ 0x }}{{ 1e }}{{ .1.2 }}{{ '' }}{{ 'ab' }}{{ '\\x' }}{{ 1+2i }}",
        "{{ \"\\xff\\377\" }}{{ `\r` }}",
        "{{with $x, $y := .}}{{end}}",
        "{{ $ := 1 }}{{ $ }}",
        "{{ (nil).x }}{{ nil.x }}",
        "{{ call . }}{{ call nil }}",
        "{{ .Labels.SortedPairs }}{{ (toTime 0).Format \"2006-01-02 __2 002 .999 ,000 Z07 -070000\" }}",
        "{{ parseDuration \"99999999999999999999y\" }}{{ parseDuration \"300y\" }}",
        "{{ sortByLabel \"x\" (query \"abc\") }}{{ first nil }}{{ label \"x\" nil }}",
        "{{ urlUnescape \"%zz\" }}{{ tz \"Mars\" . }}{{ since . }}{{ date \"x\" . }}",
    ];
    for i in inputs {
        crate::fuzzing::template(i.as_bytes());
    }
    let deep = "{{".to_string() + &"(".repeat(5000) + "}}";
    crate::fuzzing::template(deep.as_bytes());
    let deep_if = "{{if 1}}".repeat(5000);
    crate::fuzzing::template(deep_if.as_bytes());
    crate::fuzzing::template(&[0xff, 0xfe, b'{', b'{', 0x80, b'}', b'}']);
    // Every prefix of a long template.
    let long = "a {{- if .t -}} {{ range $i, $v := .a }}{{ printf \"%05.1f\" $v }}{{ else }}none{{ end }}{{ end }} {{ template \"x\" . }}{{ define \"x\" }}{{ .s | html | js }}{{ end }}";
    for n in 0..long.len() {
        crate::fuzzing::template(&long.as_bytes()[..n]);
    }
}
