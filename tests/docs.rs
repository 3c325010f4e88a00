//! The documentation agrees with srvd: every config key has its entry (and
//! default) in srvd.toml(5), the generated srvd(8) says what `--help` says,
//! every template variable and helper is documented, every relative link in
//! README.md and docs/ resolves, and debian/changelog has Cargo.toml's version.
//!
//! Where srvd itself can say what it accepts, the tests ask the binary (the
//! keys from its "unknown field" error, the template context from a render),
//! so that they follow the code wherever it moves; only the defaults and the
//! template helpers are read from the source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SRVD: &str = env!("CARGO_BIN_EXE_srvd");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn srvd(args: &[&str], dir: &Path) -> Output {
    Command::new(SRVD)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running {SRVD}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with every problem at once, one a line.
fn assert_none(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// --- srvd.toml(5) -------------------------------------------------------------

fn man5() -> String {
    read(&root().join("packaging/man/srvd.toml.5"))
}

/// Roff as plain text: font changes dropped, escapes resolved.
fn unroff(s: &str) -> String {
    let mut s = s.to_owned();
    for (from, to) in [
        ("\\*(Aq", "'"),
        ("\\(aq", "'"),
        ("\\(mu", "x"),
        ("\\fB", ""),
        ("\\fI", ""),
        ("\\fR", ""),
        ("\\fP", ""),
        ("\\-", "-"),
        ("\\&", ""),
        ("\\e", "\\"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// Collapses runs of white space to one space.
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A man page's tagged paragraphs: for each `.TP` (and each `.TQ` sharing its
/// text), the tag line as written and the paragraph's text, until the next
/// paragraph or section. Requests in the text (`.B x`, `.IR y ,`) keep their
/// arguments, so that the text reads as the page does.
fn tagged(page: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] != ".TP" {
            i += 1;
            continue;
        }
        let mut tags = Vec::new();
        i += 1;
        while i < lines.len() {
            tags.push(lines[i]);
            i += 1;
            if i < lines.len() && lines[i] == ".TQ" {
                i += 1;
            } else {
                break;
            }
        }
        let mut text = Vec::new();
        while i < lines.len() {
            let l = lines[i];
            let request = l.split_whitespace().next().unwrap_or("");
            if matches!(
                request,
                ".TP" | ".SH" | ".SS" | ".PP" | ".IP" | ".ie" | ".el"
            ) {
                break;
            }
            if l.starts_with(".\\\"") {
                i += 1;
                continue;
            }
            text.push(match l.strip_prefix('.') {
                Some(r) => r.split_once(' ').map_or("", |(_, args)| args),
                None => l,
            });
            i += 1;
        }
        let text = words(&unroff(&text.join(" ")).replace('"', ""));
        for tag in tags {
            out.push((tag.to_owned(), text.clone()));
        }
    }
    out
}

/// The name a srvd.toml(5) tag documents: `.B interval` → interval,
/// `.B [notify]` → notify, `.BI shuffle(seed= N )` → shuffle.
fn tag_name(tag: &str) -> Option<String> {
    let arg = tag
        .strip_prefix(".B ")
        .or_else(|| tag.strip_prefix(".BI "))?;
    let name = arg.trim().trim_start_matches('[').trim_end_matches(']');
    let name = name.split(['(', ' ']).next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// srvd.toml(5)'s entries by name (the text of each tagged paragraph).
/// A table also counts as documented where the page introduces it as
/// `.B [[template]]` or `.B [notify]` outside a tagged paragraph.
fn man5_entries() -> BTreeMap<String, String> {
    let page = man5();
    let mut entries = BTreeMap::new();
    for (tag, text) in tagged(&page) {
        if let Some(name) = tag_name(&tag) {
            entries.entry(name).or_insert(text);
        }
    }
    for l in page.lines() {
        if let Some(t) = l.strip_prefix(".B [") {
            let name = t.trim_start_matches('[').trim_end_matches(']');
            entries.entry(name.to_owned()).or_default();
        }
    }
    entries
}

/// The keys srvd accepts where `prefix` puts them, as srvd itself lists them:
/// the config is read with serde's `deny_unknown_fields`, whose error for an
/// unknown key names every key expected there.
fn accepted_keys(prefix: &str, unknown_line: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("srvd.toml");
    std::fs::write(&config, format!("{prefix}{unknown_line}\n")).unwrap();
    let out = srvd(&["--config", config.to_str().unwrap(), "check"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "srvd check: {err}");
    let list = err
        .split_once("`, expected one of ")
        .or_else(|| err.split_once("`, expected "))
        .unwrap_or_else(|| panic!("no list of expected keys in: {err}"))
        .1;
    let mut keys = Vec::new();
    let mut rest = list;
    // "`a`, `b`, `c` (in ..." or "`min` or `max` (in ...": the keys are the
    // back-quoted words before the first thing that is not a separator.
    while let Some(t) = rest.strip_prefix('`') {
        let Some((key, after)) = t.split_once('`') else {
            break;
        };
        keys.push(key.to_owned());
        rest = after
            .strip_prefix(", ")
            .or_else(|| after.strip_prefix(" or "))
            .unwrap_or("");
    }
    assert!(!keys.is_empty(), "no keys read from: {err}");
    keys
}

const UNKNOWN: &str = "zzzz_not_a_srvd_key_zzzz";

/// Every key srvd.toml accepts, with the table it is in ("" for the top level).
fn every_key() -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    for (table, prefix) in [
        ("", ""),
        ("[[template]]", "[[template]]\n"),
        ("[notify]", "[notify]\n"),
    ] {
        for k in accepted_keys(prefix, &format!("{UNKNOWN} = 1")) {
            keys.push((table, k));
        }
    }
    keys
}

#[test]
fn every_config_key_has_an_entry_in_srvd_toml_5() {
    let entries = man5_entries();
    let keys = every_key();
    // The three tables each contribute: a list that came out short would
    // otherwise pass without checking much.
    for want in ["src", "name", "listen", "template", "notify"] {
        assert!(
            keys.iter().any(|(_, k)| k == want),
            "srvd did not list `{want}` among its keys: {keys:?}"
        );
    }
    let missing: Vec<String> = keys
        .iter()
        .filter(|(_, k)| !entries.contains_key(k))
        .map(|(t, k)| format!("{t}{}{k}", if t.is_empty() { "" } else { " " }))
        .collect();
    assert_none(
        &format!(
            "srvd.toml(5) has no entry for these of the {} keys srvd accepts (counted per table)",
            keys.len()
        ),
        &missing,
    );
}

#[test]
fn the_wait_tables_keys_are_in_the_entry_of_wait() {
    let keys = accepted_keys("", &format!("wait = {{ min = \"1s\", {UNKNOWN} = 1 }}"));
    assert!(keys.len() >= 2, "{keys:?}");
    let entries = man5_entries();
    let wait = entries
        .get("wait")
        .expect("srvd.toml(5) has an entry for wait");
    let missing: Vec<String> = keys
        .into_iter()
        .filter(|k| {
            !wait
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == k)
        })
        .collect();
    assert_none("the entry of wait in srvd.toml(5) does not name", &missing);
}

/// `Duration::from_secs(2)` → "2s", `"/etc/resolv.conf"` → /etc/resolv.conf:
/// a default as srvd.toml(5) writes it.
fn default_as_written(value: &str) -> String {
    let digits = || {
        value
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
    };
    if value.contains("Duration::ZERO") {
        "0s".into()
    } else if value.contains("from_secs(") {
        format!("{}s", digits())
    } else if value.contains("from_millis(") {
        let ms: u64 = digits().parse().unwrap();
        if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    } else {
        value.trim_matches('"').to_owned()
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `pub const`s of the sources under `dir`, as (NAME, value as written).
fn pub_consts(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut out = Vec::new();
    for f in files {
        for line in read(&f).lines() {
            let line = line.trim_start();
            let Some(rest) = line
                .strip_prefix("pub const ")
                .or_else(|| line.strip_prefix("pub(crate) const "))
            else {
                continue;
            };
            let Some((name, rest)) = rest.split_once(':') else {
                continue;
            };
            let Some((_, value)) = rest.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_end_matches(';').trim();
            out.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    out
}

/// Each default that src/config declares for a key, the way srvd.toml(5)
/// must give it: a `pub const` named after the key (`INTERVAL`), or after its
/// table and the key (`NOTIFY_DEBOUNCE`).
#[test]
fn srvd_toml_5_gives_every_default_of_src_config() {
    let keys: BTreeSet<String> = every_key().into_iter().map(|(_, k)| k).collect();
    let entries = man5_entries();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (name, value) in pub_consts(&root().join("src/config")) {
        let lower = name.to_lowercase();
        let key = if keys.contains(&lower) {
            lower
        } else {
            match lower.split_once('_') {
                Some((_, k)) if keys.contains(k) => k.to_owned(),
                _ => continue,
            }
        };
        checked += 1;
        let want = format!("Default: {}.", default_as_written(&value));
        let text = entries.get(&key).map(String::as_str).unwrap_or("");
        if !text.contains(&want) {
            wrong.push(format!(
                "{name} = {value}: the entry of {key} lacks \"{want}\""
            ));
        }
    }
    assert!(
        checked >= 5,
        "found only {checked} defaults named after a key in src/config"
    );
    assert_none("srvd.toml(5) disagrees with src/config", &wrong);
}

// --- templates ------------------------------------------------------------------

/// The names srvd puts in every template's context, and the fields of a
/// record, from a render of the bundled example's records (with
/// resolve_targets, so that `addrs` is there too).
fn context_and_fields() -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("examples/example.com.zone"),
        dir.path().join("example.com.zone"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t.tmpl"),
        "{% for k, v in __tera_context %}variable {{ k }}\n{% endfor %}\
         {% for k, v in srvs[0] %}field {{ k }}\n{% endfor %}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("srvd.toml"),
        "src = \"t.tmpl\"\ndest = \"out.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
         zone_file = \"example.com.zone\"\nresolve_targets = true\n",
    )
    .unwrap();
    let out = srvd(&["--config", "srvd.toml", "render"], dir.path());
    assert!(
        out.status.success(),
        "srvd render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let pick = |prefix: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
            .collect()
    };
    let (vars, fields) = (pick("variable "), pick("field "));
    assert!(vars.iter().any(|v| v == "srvs"), "context: {vars:?}");
    assert!(fields.iter().any(|f| f == "port"), "fields: {fields:?}");
    (vars, fields)
}

/// The filters and functions srvd registers with Tera (read from src/: Tera
/// cannot list them).
fn helpers() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut names = Vec::new();
    for f in files {
        let text = read(&f);
        for call in ["register_filter(\"", "register_function(\""] {
            for (_, rest) in text
                .match_indices(call)
                .map(|(i, _)| text.split_at(i + call.len()))
            {
                if let Some((name, _)) = rest.split_once('"') {
                    names.push(name.to_owned());
                }
            }
        }
    }
    assert!(
        names.iter().any(|n| n == "shuffle"),
        "no template helpers found in src/: {names:?}"
    );
    names
}

#[test]
fn srvd_toml_5_documents_every_template_variable_field_and_helper() {
    let (vars, fields) = context_and_fields();
    let entries = man5_entries();
    let missing: Vec<String> = vars
        .iter()
        .chain(&fields)
        .chain(&helpers())
        .filter(|n| !entries.contains_key(*n))
        .cloned()
        .collect();
    assert_none("srvd.toml(5) has no entry for", &missing);
}

/// The text of a Markdown file's inline code spans (`...`).
fn code_spans(md: &str) -> Vec<String> {
    let mut spans = Vec::new();
    for line in strip_fences(md).lines() {
        let mut parts = line.split('`');
        parts.next();
        while let (Some(code), Some(_)) = (parts.next(), parts.next()) {
            spans.push(code.to_owned());
        }
        // An odd count leaves the last span open: not code.
    }
    spans
}

/// The Markdown without its fenced code blocks.
fn strip_fences(md: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<&str> = None;
    for line in md.lines() {
        let t = line.trim_start();
        match fence {
            Some(f) if t.starts_with(f) => fence = None,
            Some(_) => {}
            None if t.starts_with("```") => fence = Some("```"),
            None if t.starts_with("~~~") => fence = Some("~~~"),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn docs_templates_md_documents_every_template_variable_field_and_helper() {
    let path = root().join("docs/templates.md");
    let spans = code_spans(&read(&path));
    let (vars, fields) = context_and_fields();
    // Documented: named as a word in inline code (`srvs`, `s.port`,
    // `shuffle(seed=N)`), not merely used in an example block.
    let missing: Vec<String> = vars
        .iter()
        .chain(&fields)
        .chain(&helpers())
        .filter(|n| {
            !spans.iter().any(|s| {
                s.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == n.as_str())
            })
        })
        .cloned()
        .collect();
    assert_none(
        "docs/templates.md does not name (in `code`) these template variables, fields or helpers",
        &missing,
    );
}

// --- srvd(8) --------------------------------------------------------------------

/// One option of `--help` or of a man page: its flags ("-c", "--config") and
/// the first paragraph of its description.
type Options = BTreeMap<Vec<String>, String>;

/// The options and arguments of a `--help` text. One starts on a line
/// indented by at most six spaces with a dash (an option) or `<` (an
/// argument); its description follows on the same line (short help) or on
/// more indented lines (long help), and notes in brackets ([default: ...],
/// [alias: ...]) are left out.
fn help_options(help: &str) -> Options {
    let mut options = Options::new();
    let mut section = "";
    let mut current: Option<(Vec<String>, Vec<String>)> = None;
    let mut finish = |cur: &mut Option<(Vec<String>, Vec<String>)>| {
        if let Some((flags, text)) = cur.take() {
            let first = text
                .split(|l| l.is_empty())
                .next()
                .unwrap_or_default()
                .join(" ");
            let mut first = words(&first);
            while first.ends_with(']') {
                match first
                    .rfind(" [")
                    .or_else(|| first.starts_with('[').then_some(0))
                {
                    Some(i) => first.truncate(i),
                    None => break,
                }
            }
            options.insert(flags, first.trim().to_owned());
        }
    };
    for line in help.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            finish(&mut current);
            section = line;
            continue;
        }
        if section != "Options:" && section != "Arguments:" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent <= 6 && line.trim_start().starts_with(['-', '<']) {
            finish(&mut current);
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let flags = flags_of(&tokens);
            // The description: what follows the flags and their values.
            let mut rest = line.trim_start();
            for token in tokens.iter().take_while(|t| t.starts_with(['-', '<'])) {
                rest = rest[token.len()..].trim_start();
            }
            let text = if rest.is_empty() {
                vec![]
            } else {
                vec![rest.to_owned()]
            };
            current = Some((flags, text));
        } else if let Some((_, text)) = current.as_mut() {
            text.push(line.trim().to_owned());
        }
    }
    finish(&mut current);
    options
}

/// An option's flags ("-c", "--config") from the words that introduce it, or
/// an argument's name ("<FILE>").
fn flags_of(tokens: &[&str]) -> Vec<String> {
    match tokens.first() {
        Some(t) if t.starts_with('<') => vec![(*t).to_owned()],
        _ => tokens
            .iter()
            .take_while(|t| t.starts_with(['-', '<']))
            .filter(|t| t.starts_with('-'))
            .map(|t| t.trim_end_matches(',').to_owned())
            .collect(),
    }
}

/// The OPTIONS section of a page that clap_mangen wrote (arguments included).
fn man_options(page: &str) -> Options {
    let section = page
        .split(".SH OPTIONS")
        .nth(1)
        .and_then(|s| s.split("\n.SH ").next())
        .unwrap_or("");
    tagged(section)
        .into_iter()
        .map(|(tag, text)| {
            let tag = unroff(&tag);
            let tokens: Vec<&str> = tag.split_whitespace().collect();
            (flags_of(&tokens), text)
        })
        .collect()
}

/// The subcommands a `--help` lists, with their one-line description.
fn help_commands(help: &str) -> BTreeMap<String, String> {
    let Some(list) = help.split("\nCommands:\n").nth(1) else {
        return BTreeMap::new();
    };
    list.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let (name, about) = l.trim().split_once(' ')?;
            Some((name.to_owned(), words(about)))
        })
        // clap's own `srvd help [COMMAND]` prints the same --help text: it
        // has no page of its own.
        .filter(|(name, _)| name != "help")
        .collect()
}

/// srvd(8) and the page of each subcommand, as packaging generates them.
fn generated_pages() -> (tempfile::TempDir, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = srvd(&["generate", "--man", "man"], dir.path());
    assert!(
        out.status.success(),
        "srvd generate --man: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pages = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path().join("man")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        pages.insert(name, read(&path));
    }
    (dir, pages)
}

#[test]
fn srvd_8_lists_the_options_of_help() {
    let (_dir, pages) = generated_pages();
    let page = pages.get("srvd.8").expect("srvd generate writes srvd.8");
    let help = stdout(&srvd(&["--help"], &root()));
    let want = help_options(&help);
    assert!(
        want.contains_key(&vec!["--oneshot".to_owned()]),
        "options read from --help: {want:#?}"
    );
    assert_eq!(
        man_options(page),
        want,
        "srvd.8's OPTIONS against srvd --help"
    );
}

#[test]
fn srvd_8_lists_each_subcommand_and_each_has_its_page() {
    let (_dir, pages) = generated_pages();
    let page = &pages["srvd.8"];
    let help = stdout(&srvd(&["--help"], &root()));
    let commands = help_commands(&help);
    assert!(commands.contains_key("check"), "{commands:?}");
    let section = page
        .split(".SH SUBCOMMANDS")
        .nth(1)
        .and_then(|s| s.split("\n.SH ").next())
        .unwrap_or("");
    let listed: BTreeMap<String, String> = tagged(section)
        .into_iter()
        .map(|(tag, text)| {
            let name = unroff(&tag);
            let name = name.trim_start_matches("srvd-").trim_end_matches("(8)");
            (name.to_owned(), text)
        })
        .collect();
    assert_eq!(listed, commands, "srvd.8's SUBCOMMANDS against srvd --help");
    let mut problems = Vec::new();
    for name in commands.keys() {
        let Some(sub) = pages.get(&format!("srvd-{name}.8")) else {
            problems.push(format!("no srvd-{name}.8"));
            continue;
        };
        let help = stdout(&srvd(&[name, "--help"], &root()));
        let (got, want) = (man_options(sub), help_options(&help));
        if want.is_empty() || got != want {
            problems.push(format!(
                "srvd-{name}.8's OPTIONS {got:?} against srvd {name} --help {want:?}"
            ));
        }
    }
    let expected: BTreeSet<String> = std::iter::once("srvd.8".to_owned())
        .chain(commands.keys().map(|n| format!("srvd-{n}.8")))
        .collect();
    let written: BTreeSet<String> = pages.keys().cloned().collect();
    if written != expected {
        problems.push(format!("pages written {written:?}, expected {expected:?}"));
    }
    assert_none("the subcommands' pages", &problems);
}

#[test]
fn srvd_8_has_the_version_and_exit_statuses_of_help() {
    let (_dir, pages) = generated_pages();
    let page = &pages["srvd.8"];
    let version = stdout(&srvd(&["--version"], &root()));
    let version = version.trim();
    assert_eq!(version, format!("srvd {}", env!("CARGO_PKG_VERSION")));
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .expect("srvd.8 has a .TH line");
    assert!(th.contains(&format!("\"{version}\"")), "{th}");

    // --help: "Exit status: 0 success; 1 ...; 2 ...; 78 ...".
    let help = words(&stdout(&srvd(&["--help"], &root())));
    let statuses = help
        .split_once("Exit status: ")
        .expect("--help gives the exit statuses")
        .1;
    let statuses = statuses.split_once('.').map_or(statuses, |(s, _)| s);
    let in_help: BTreeSet<String> = statuses
        .split("; ")
        .filter_map(|s| s.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let section = page
        .split(".SH \"EXIT STATUS\"")
        .nth(1)
        .and_then(|s| s.split("\n.SH ").next())
        .expect("srvd.8 has an EXIT STATUS section");
    let in_man: BTreeSet<String> = tagged(section)
        .into_iter()
        .map(|(tag, _)| unroff(&tag))
        .collect();
    assert!(in_help.contains("78"), "{in_help:?}");
    assert_eq!(in_man, in_help, "srvd.8's EXIT STATUS against srvd --help");
}

// --- links and packaging ----------------------------------------------------------

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut files);
    files.sort();
    files
}

/// The targets of a Markdown file's links and images, inline
/// (`[text](target "title")`) and by reference (`[label]: target`), outside
/// code.
fn link_targets(md: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let text = strip_fences(md);
    for line in text.lines() {
        // Inline code may hold brackets that are not links.
        let line: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if let Some((label, rest)) = trimmed.split_once("]:") {
                if !label.contains(']') {
                    if let Some(t) = rest.split_whitespace().next() {
                        targets.push(t.trim_matches(['<', '>']).to_owned());
                    }
                    continue;
                }
            }
        }
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            if let Some(t) = rest[..end].split_whitespace().next() {
                targets.push(t.trim_matches(['<', '>']).to_owned());
            }
        }
    }
    targets
}

#[test]
fn every_relative_link_in_readme_and_docs_resolves() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in markdown_files() {
        let dir = file.parent().unwrap();
        for target in link_targets(&read(&file)) {
            let lower = target.to_ascii_lowercase();
            if target.starts_with('#')
                || lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("mailto:")
            {
                continue;
            }
            let path = target.split('#').next().unwrap().replace("%20", " ");
            let resolved = match path.strip_prefix('/') {
                Some(from_root) => root().join(from_root),
                None => dir.join(&path),
            };
            checked += 1;
            if !resolved.exists() {
                let shown = file.strip_prefix(root()).unwrap_or(&file);
                broken.push(format!("{}: {target}", shown.display()));
            }
        }
    }
    assert!(checked > 0, "no relative link found in README.md or docs/");
    assert_none("links that lead nowhere", &broken);
}

#[test]
fn debian_changelog_has_cargo_tomls_version() {
    let changelog = read(&root().join("debian/changelog"));
    let first = changelog.lines().next().unwrap_or("");
    let version = first
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(v, _)| v)
        .unwrap_or_else(|| panic!("no version in debian/changelog's first line: {first}"));
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "debian/changelog: {first}"
    );
}
