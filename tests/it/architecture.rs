//! Keeps Herald's modules pointing one way.
//!
//! Data flows from the faces (the HTTP API, the console, the CLI, the SMTP submission server, and `app`, which wires them) to the services
//! (domain) and on to the store and the outbound clients. These tests read every `src/**/*.rs`, collect which
//! top-level modules each module names (`crate::x`, `super::x` that climbs to the crate root, `herald::x` in the
//! binary), and fail when
//! - the top-level modules form a cycle (the cycle is printed), or
//! - a module other than a face names a face (`http`, `console`, `cli`, `submission`, `app`), or
//! - anything but the binary (`main` and its `cli`) names `app`, the wiring.
//!
//! The reader is a small tokenizer, not a Rust parser: comments, string and character literals are skipped, so a
//! path written in a doc comment or a message does not count; `use crate::{a, b::c}` groups count each member.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The faces: they translate requests, pages and commands into service calls. Nothing below them names them.
const FACES: &[&str] = &["app", "http", "console", "cli", "submission"];
/// What may name `app` besides the binary (`main.rs` and the modules it declares): the command groups.
const APP_USERS: &[&str] = &["cli"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Splits source into identifiers, `::` and punctuation, leaving out comments, strings and char literals.
fn tokenize(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_quoted(&chars, i);
        } else if (c == 'r' || c == 'b' || c == 'c') && is_raw_string_start(&chars, i) {
            i = skip_raw_string(&chars, i);
        } else if (c == 'b' || c == 'c') && at(i + 1) == '"' {
            i = skip_quoted(&chars, i + 1);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\'', '\u{1F600}') or a lifetime ('a), which stays out of the tokens.
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // A raw identifier `r#name` is the identifier `name`.
            if word == "r" && at(i) == '#' && is_ident_start(at(i + 1)) {
                i += 1;
                continue;
            }
            toks.push(Tok::Ident(word));
        } else if c == ':' && at(i + 1) == ':' {
            toks.push(Tok::PathSep);
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    toks
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Index just past the string literal whose opening quote is at `open`.
fn skip_quoted(chars: &[char], open: usize) -> usize {
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn is_raw_string_start(chars: &[char], i: usize) -> bool {
    // r"..", r#".."#, br"..", cr#".."#; the prefix must start a token.
    if i > 0 && is_ident_char(chars[i - 1]) {
        return false;
    }
    let mut j = i;
    if chars[j] != 'r' {
        j += 1;
        if chars.get(j) != Some(&'r') {
            return false;
        }
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

fn skip_raw_string(chars: &[char], i: usize) -> usize {
    let mut j = i;
    while chars[j] != '#' && chars[j] != '"' {
        j += 1;
    }
    let mut hashes = 0;
    while chars[j] == '#' {
        hashes += 1;
        j += 1;
    }
    j += 1; // the opening quote
    while j < chars.len() {
        if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
            return j + 1 + hashes;
        }
        j += 1;
    }
    j
}

/// How a path root resolves in one file.
struct FileContext {
    /// Depth of the file's module below the crate root: `foo.rs` and `foo/mod.rs` are 1, `foo/bar.rs` is 2.
    depth: usize,
    /// The crate-root keywords of this crate and the top-level modules they can reach: `crate` names this crate's
    /// modules; in the binary, `herald` names the library's.
    roots: Vec<&'static str>,
}

/// The top-level modules a file names, from its tokens.
fn referenced_tops(toks: &[Tok], ctx: &FileContext) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Inline `mod name { .. }` blocks deepen the module path; remember the brace depth each one opened at.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') => {
                braces += 1;
                if i >= 2 && toks[i - 2] == Tok::Ident("mod".into()) && matches!(toks[i - 1], Tok::Ident(_)) {
                    inline_mods.push(braces);
                }
            }
            Tok::Punct('}') => {
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            Tok::Ident(word) => {
                // A path root only where a path starts: not after `::` (as in `foo::crate`, which is no path).
                let starts_path = i == 0 || toks[i - 1] != Tok::PathSep;
                if starts_path && toks.get(i + 1) == Some(&Tok::PathSep) {
                    if ctx.roots.contains(&word.as_str()) {
                        collect_path_heads(toks, i + 2, &mut found);
                    } else if word == "super" {
                        let mut climbs = 1;
                        let mut j = i + 2;
                        while toks.get(j) == Some(&Tok::Ident("super".into())) && toks.get(j + 1) == Some(&Tok::PathSep)
                        {
                            climbs += 1;
                            j += 2;
                        }
                        if climbs >= ctx.depth + inline_mods.len() {
                            collect_path_heads(toks, j, &mut found);
                        }
                        i = j;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Collects the first segment of the path (or of each member of the `{..}` group) starting at `at`.
fn collect_path_heads(toks: &[Tok], at: usize, found: &mut BTreeSet<String>) {
    match toks.get(at) {
        Some(Tok::Ident(name)) if name != "self" => {
            found.insert(name.clone());
        }
        Some(Tok::Punct('{')) => {
            let mut depth = 0;
            let mut expect_head = true;
            for tok in &toks[at..] {
                match tok {
                    Tok::Punct('{') => {
                        depth += 1;
                        if depth > 1 {
                            expect_head = false;
                        }
                    }
                    Tok::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Punct(',') if depth == 1 => expect_head = true,
                    Tok::Ident(name) if depth == 1 && expect_head => {
                        if name != "self" {
                            found.insert(name.clone());
                        }
                        expect_head = false;
                    }
                    _ => {
                        if depth == 1 {
                            expect_head = false;
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// `mod name;` declarations (with any visibility and attributes) in a crate root.
fn declared_modules(src: &str) -> Vec<String> {
    let toks = tokenize(src);
    let mut mods = Vec::new();
    let mut braces = 0usize;
    for (i, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Punct('{') => braces += 1,
            Tok::Punct('}') => braces = braces.saturating_sub(1),
            Tok::Ident(word) if word == "mod" && braces == 0 => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct(';'))) = (toks.get(i + 1), toks.get(i + 2)) {
                    mods.push(name.clone());
                }
            }
            _ => {}
        }
    }
    mods
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Which top-level module a file belongs to and how deep its module sits, from its path below `src/`.
fn module_of(relative: &Path) -> (String, usize) {
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let top = parts[0].trim_end_matches(".rs").to_string();
    let file = parts[parts.len() - 1].as_str();
    let depth = if file == "mod.rs" { parts.len() - 1 } else { parts.len() };
    (top, depth)
}

/// Herald's top-level modules and what each names.
struct ModuleGraph {
    /// Module → the top-level modules it names.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// The binary's modules: `main` and the modules `main.rs` declares.
    binary: BTreeSet<String>,
}

/// Reads `src/` into the graph of its top-level modules.
fn module_graph() -> ModuleGraph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lib_mods: BTreeSet<String> = declared_modules(&read(&src.join("lib.rs"))).into_iter().collect();
    let bin_mods: BTreeSet<String> = declared_modules(&read(&src.join("main.rs"))).into_iter().collect();
    assert!(lib_mods.len() > 5, "found too few modules in src/lib.rs: {lib_mods:?}");

    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let relative = path.strip_prefix(&src).expect("below src/");
        let (top, depth) = module_of(relative);
        if top == "lib" {
            continue; // the crate root declares the modules; it is no module of its own
        }
        let in_binary = top == "main" || bin_mods.contains(&top);
        let (depth, roots, reachable) = if top == "main" {
            (
                0,
                vec!["crate", "herald"],
                lib_mods.union(&bin_mods).cloned().collect::<BTreeSet<_>>(),
            )
        } else if in_binary {
            (
                depth,
                vec!["crate", "herald"],
                lib_mods.union(&bin_mods).cloned().collect(),
            )
        } else {
            (depth, vec!["crate"], lib_mods.clone())
        };
        let ctx = FileContext { depth, roots };
        let names = referenced_tops(&tokenize(&read(&path)), &ctx);
        let edges = graph.entry(top.clone()).or_default();
        // Names that are no top-level module (a re-export at the root, a macro) are no edge.
        edges.extend(
            names
                .into_iter()
                .filter(|name| *name != top && reachable.contains(name)),
        );
    }
    let mut binary = bin_mods;
    binary.insert("main".to_owned());
    ModuleGraph { edges: graph, binary }
}

/// One cycle in the graph, as the list of modules along it, if there is any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack
                    .iter()
                    .position(|n| n == node)
                    .expect("an open node is on the stack");
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// Every edge that breaks the face rule, as "from -> to".
fn face_violations(graph: &BTreeMap<String, BTreeSet<String>>, binary: &BTreeSet<String>) -> Vec<String> {
    let mut violations = Vec::new();
    for (from, tos) in graph {
        let in_binary = binary.contains(from);
        let below_faces = !FACES.contains(&from.as_str()) && !in_binary;
        let may_name_app = in_binary || APP_USERS.contains(&from.as_str());
        for to in tos {
            if (below_faces && FACES.contains(&to.as_str())) || (to == "app" && !may_name_app) {
                violations.push(format!("{from} -> {to}"));
            }
        }
    }
    violations
}

fn render(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    graph
        .iter()
        .map(|(from, tos)| format!("  {from} -> {}", tos.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph().edges;
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the top-level modules form a cycle: {}\nthe whole graph:\n{}",
            cycle.join(" -> "),
            render(&graph)
        );
    }
}

#[test]
fn only_faces_name_faces_and_only_the_binary_names_app() {
    let ModuleGraph { edges, binary } = module_graph();
    let violations = face_violations(&edges, &binary);
    assert!(
        violations.is_empty(),
        "modules below the faces ({FACES:?}) name a face, or something outside the binary ({binary:?}) and \
         {APP_USERS:?} names app:\n  {}\nthe whole graph:\n{}",
        violations.join("\n  "),
        render(&edges)
    );
}

#[test]
fn the_graph_sees_the_known_edges() {
    // Guards the reader itself: if it stopped seeing paths, the two tests above would pass vacuously.
    let ModuleGraph { edges: graph, binary } = module_graph();
    assert!(binary.contains("main"), "{binary:?}");
    let edges = |from: &str| graph.get(from).cloned().unwrap_or_default();
    assert!(
        edges("http").contains("store"),
        "http -> store missing:\n{}",
        render(&graph)
    );
    assert!(edges("cli").contains("app"), "cli -> app missing:\n{}", render(&graph));
    assert!(
        edges("app").contains("http"),
        "app -> http missing:\n{}",
        render(&graph)
    );
}

fn tops(src: &str, depth: usize) -> Vec<String> {
    referenced_tops(
        &tokenize(src),
        &FileContext {
            depth,
            roots: vec!["crate"],
        },
    )
    .into_iter()
    .collect()
}

#[test]
fn reader_counts_groups_nested_groups_and_each_member() {
    assert_eq!(tops("use crate::{a, b::c, d::{e, f::g}, self};", 1), ["a", "b", "d"]);
    assert_eq!(tops("use crate::{\n    a::{x, y},\n    b,\n};", 1), ["a", "b"]);
    assert_eq!(
        tops("fn f() { crate::store::now_ms(); $crate::mail::X; }", 1),
        ["mail", "store"]
    );
    assert_eq!(tops("use crate :: spaced :: x;", 1), ["spaced"]);
    assert_eq!(tops("fn f(r#loop: crate::r#loops::L) {}", 1), ["loops"]);
    assert_eq!(
        tops("pub(crate) fn f() {} pub(in crate::inner) struct S;", 1),
        ["inner"]
    );
}

#[test]
fn reader_ignores_comments_strings_and_chars() {
    let src = r####"
        // use crate::line;
        /// use crate::doc;
        /* use crate::block; /* nested crate::inner */ crate::still */
        const A: &str = "crate::string \" crate::escaped";
        const B: &str = r#"crate::raw " crate::raw_quote"#;
        const C: &[u8] = b"crate::bytes";
        const D: char = '"';
        const E: char = '\'';
        fn f<'a>(x: &'a str) -> crate::real::T { T::from(x) }
    "####;
    assert_eq!(tops(src, 1), ["real"]);
}

#[test]
fn reader_resolves_super_by_depth() {
    // In src/store/users.rs (depth 2), `super::` is `store` itself and `super::super::` the crate root.
    assert_eq!(tops("use super::Role; use super::super::auth::Role;", 2), ["auth"]);
    // In src/clock.rs (depth 1), `super::` is the crate root.
    assert_eq!(tops("use super::store::now_ms;", 1), ["store"]);
    assert_eq!(tops("use super::{store, mail::Q};", 1), ["mail", "store"]);
    // Inside an inline `mod tests`, one more `super::` is needed to reach the root.
    assert_eq!(tops("mod tests { use super::*; use super::super::x::Y; }", 1), ["x"]);
    assert_eq!(tops("mod tests { use super::super::super::x::Y; }", 2), ["x"]);
    assert_eq!(tops("mod tests { } use super::x;", 1), ["x"]);
}

#[test]
fn cycle_finder_and_face_rule_catch_what_they_should() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry(from.to_string()).or_default().insert(to.to_string());
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let binary: BTreeSet<String> = ["main".to_owned(), "commands".to_owned()].into();
    let edges = graph(&[
        ("http", "store"),
        ("main", "app"),
        ("commands", "app"),
        ("cli", "app"),
        ("app", "http"),
    ]);
    assert!(face_violations(&edges, &binary).is_empty());
    assert_eq!(
        face_violations(&graph(&[("alerts", "console")]), &binary),
        ["alerts -> console"]
    );
    assert_eq!(face_violations(&graph(&[("store", "cli")]), &binary), ["store -> cli"]);
    assert_eq!(face_violations(&graph(&[("http", "app")]), &binary), ["http -> app"]);
    assert_eq!(face_violations(&graph(&[("state", "app")]), &binary), ["state -> app"]);
}
