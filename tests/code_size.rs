//! No function in `src/` over [`MAX_FN_LINES`] lines and no file over [`MAX_FILE_LINES`]: a
//! long function does several things that each deserve a name (and a doc comment saying why),
//! and a long file is several modules. Test code does not count: `#[test]` functions,
//! `#[cfg(test)]` items, and files that are `#[cfg(test)] mod x;` modules.
//!
//! Functions and files not split yet are listed in [`LONG_FNS`] and [`LONG_FILES`] with their
//! current length: the check fails when one of them grows, when a new one crosses the limit,
//! and when a listed one is split (so that its entry gets removed).
//!
//! A function's length runs from the line of its `fn` keyword to the line of its closing brace
//! (doc comments and attributes not counted). The files are tokenized with `proc_macro2`, so
//! braces in strings and comments don't count.
//!
//! See every length over the limit: `cargo test --test code_size -- --nocapture`.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 100;
const MAX_FILE_LINES: usize = 800;

/// Functions over [`MAX_FN_LINES`] not split yet: (file below `src/`, function name, lines).
const LONG_FNS: &[(&str, &str, usize)] = &[];

/// Files over [`MAX_FILE_LINES`] not split yet: (file below `src/`, lines).
const LONG_FILES: &[(&str, usize)] = &[];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file below `src`: `net/server.rs` → `[net, server]`, `net/mod.rs` →
/// `[net]`, `lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// Whether `attr` (the bracket group of `#[...]`) marks test-only code: `#[test]`,
/// `#[cfg(test)]`.
fn is_test_attr(attr: &TokenStream) -> bool {
    let text: String = attr.to_string().split_whitespace().collect();
    text == "test" || text == "cfg(test)"
}

/// What one file holds, test code left out.
#[derive(Default)]
struct Scan {
    /// (function name, lines) of every function with a body.
    fns: Vec<(String, usize)>,
    /// The names of `#[cfg(test)] mod name;` declarations (test modules in files of their own).
    test_mods: Vec<String>,
}

/// Reads `tokens` (a file's contents, or the inside of a brace group) into `out`.
fn scan(tokens: TokenStream, out: &mut Scan) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut test_item = false;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                if let Some(TokenTree::Group(g)) = tokens.get(i + 1) {
                    if g.delimiter() == Delimiter::Bracket && is_test_attr(&g.stream()) {
                        test_item = true;
                    }
                }
                i += 1;
            }
            TokenTree::Ident(kw) if test_item && kw == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Punct(semi))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    if semi.as_char() == ';' {
                        out.test_mods.push(name.to_string());
                    }
                }
                i = item_end(&tokens, i);
                test_item = false;
            }
            TokenTree::Ident(kw) if kw == "fn" => {
                let end = item_end(&tokens, i);
                if let (false, Some(TokenTree::Ident(name)), Some(TokenTree::Group(body))) =
                    (test_item, tokens.get(i + 1), tokens.get(end - 1))
                {
                    if body.delimiter() == Delimiter::Brace {
                        let lines = body.span().end().line - kw.span().start().line + 1;
                        out.fns.push((name.to_string(), lines));
                        scan(body.stream(), out);
                    }
                }
                i = end;
                test_item = false;
            }
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                if !test_item {
                    scan(g.stream(), out);
                }
                test_item = false;
                i += 1;
            }
            TokenTree::Punct(p) if p.as_char() == ';' => {
                test_item = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// The index just past the item that starts at `start`: past its first brace group (a body) or
/// its `;`, whichever comes first.
fn item_end(tokens: &[TokenTree], start: usize) -> usize {
    for (j, t) in tokens.iter().enumerate().skip(start) {
        match t {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => return j + 1,
            TokenTree::Punct(p) if p.as_char() == ';' => return j + 1,
            _ => {}
        }
    }
    tokens.len()
}

/// Every non-test file below `src` (path relative to it) with its line count and its functions
/// and their lengths.
type Sizes = BTreeMap<String, (usize, Vec<(String, usize)>)>;

/// Measures the files under `src`.
fn measure(src: &Path) -> Sizes {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut test_modules = BTreeSet::new();
    let mut scanned = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let tokens: TokenStream = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: cannot tokenize: {e:?}", file.display()));
        let mut s = Scan::default();
        scan(tokens, &mut s);
        let here = module_path(src, &file);
        for name in &s.test_mods {
            let mut m = here.clone();
            m.push(name.clone());
            test_modules.insert(m);
        }
        scanned.push((file, here, text.lines().count(), s.fns));
    }
    scanned
        .into_iter()
        .filter(|(_, here, _, _)| !(1..=here.len()).any(|n| test_modules.contains(&here[..n])))
        .map(|(file, _, lines, fns)| {
            let rel = file.strip_prefix(src).unwrap().to_string_lossy();
            (rel.replace('\\', "/"), (lines, fns))
        })
        .collect()
}

/// What breaks the rule in `sizes`, given the allowlists: one line per problem.
fn problems(
    sizes: &Sizes,
    long_fns: &[(&str, &str, usize)],
    long_files: &[(&str, usize)],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen_fns = BTreeSet::new();
    let mut seen_files = BTreeSet::new();
    for (file, (lines, fns)) in sizes {
        if *lines > MAX_FILE_LINES {
            let listed = long_files.iter().find(|(f, _)| f == file);
            if listed.is_some() {
                seen_files.insert(file.as_str());
            }
            match listed {
                Some((_, allowed)) if lines <= allowed => {}
                Some((_, allowed)) => out.push(format!(
                    "src/{file}: {lines} lines, grew past its allowed {allowed}: split it"
                )),
                None => out.push(format!(
                    "src/{file}: {lines} lines, over {MAX_FILE_LINES}: split it"
                )),
            }
        }
        for (name, n) in fns.iter().filter(|(_, n)| *n > MAX_FN_LINES) {
            let listed = long_fns.iter().find(|(f, x, _)| f == file && x == name);
            if listed.is_some() {
                seen_fns.insert((file.as_str(), name.as_str()));
            }
            match listed {
                Some((_, _, allowed)) if n <= allowed => {}
                Some((_, _, allowed)) => out.push(format!(
                    "src/{file}: fn {name}: {n} lines, grew past its allowed {allowed}: split it"
                )),
                None => out.push(format!(
                    "src/{file}: fn {name}: {n} lines, over {MAX_FN_LINES}: split it"
                )),
            }
        }
    }
    for (file, name, _) in long_fns {
        if !seen_fns.contains(&(*file, *name)) {
            out.push(format!(
                "src/{file}: fn {name} is no longer over {MAX_FN_LINES} lines (or is gone): \
                 remove it from LONG_FNS"
            ));
        }
    }
    for (file, _) in long_files {
        if !seen_files.contains(file) {
            out.push(format!(
                "src/{file} is no longer over {MAX_FILE_LINES} lines (or is gone): \
                 remove it from LONG_FILES"
            ));
        }
    }
    out
}

#[test]
fn functions_and_files_stay_short() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sizes = measure(&src);
    for (file, (lines, fns)) in &sizes {
        if *lines > MAX_FILE_LINES {
            println!("src/{file}: {lines} lines");
        }
        for (name, n) in fns.iter().filter(|(_, n)| *n > MAX_FN_LINES) {
            println!("src/{file}: fn {name}: {n} lines");
        }
    }
    // The reader works: files and functions every version of the crate has are found.
    assert!(sizes.contains_key("lib.rs"), "{:?}", sizes.keys());
    assert!(sizes["main.rs"].1.iter().any(|(f, _)| f == "main"));
    // Test modules in files of their own are left out.
    assert!(!sizes.contains_key("imap/parse/tests.rs"));
    let found = problems(&sizes, LONG_FNS, LONG_FILES);
    assert!(found.is_empty(), "\n{}", found.join("\n"));
}

#[test]
fn measures_bodies_and_skips_test_code() {
    let filler = vec!["let _ = 1;"; MAX_FN_LINES].join("\n");
    let text = format!(
        r#"
        //! A brace in a comment: {{
        fn long() {{
            let s = "}} in a string";
            {filler}
        }}
        fn short() -> [u8; 2] {{ [0, 1] }}
        trait T {{ fn declared(&self); fn provided(&self) {{ fn inner() {{}} }} }}
        #[cfg(test)]
        mod tests {{ fn helper() {{ {filler} }} }}
        #[cfg(test)]
        mod more_tests;
        #[test]
        fn a_test() {{ {filler} }}
        impl S {{
            #[cfg(test)]
            fn test_only() {{ {filler} }}
            pub(crate) async fn method(&self) {{}}
        }}
        "#
    );
    let mut s = Scan::default();
    scan(text.parse().unwrap(), &mut s);
    let names: Vec<(&str, usize)> = s.fns.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    assert_eq!(
        names,
        [
            ("long", MAX_FN_LINES + 3),
            ("short", 1),
            ("provided", 1),
            ("inner", 1),
            ("method", 1)
        ]
    );
    assert_eq!(s.test_mods, ["more_tests"]);
}

#[test]
fn the_allowlists_hold_lengths_down_and_go_stale() {
    let sizes: Sizes = [
        ("a.rs".to_string(), (900, vec![("f".to_string(), 150)])),
        ("b.rs".to_string(), (10, vec![("g".to_string(), 120)])),
    ]
    .into();
    let fns = [("a.rs", "f", 150), ("b.rs", "g", 119)];
    let found = problems(&sizes, &fns, &[("a.rs", 900)]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("fn g: 120 lines, grew"), "{found:?}");
    let found = problems(&sizes, &[("b.rs", "g", 120), ("c.rs", "h", 101)], &[]);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("a.rs: 900 lines, over"), "{found:?}");
    assert!(found[1].contains("fn f: 150 lines, over"), "{found:?}");
    assert!(found[2].contains("fn h is no longer"), "{found:?}");
}
