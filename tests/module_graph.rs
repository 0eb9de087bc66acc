//! The crate's top-level modules (`src/*.rs` and `src/*/`) depend on each other one way only:
//! no cycles. A cycle (say `config` naming a `net` type while `net` reads `config`) means
//! neither side can be understood, tested or changed alone; `lib.rs` describes the intended
//! direction.
//!
//! The graph comes from the source itself: every `crate::X` path (in `use` trees too, `use
//! crate::{x, y}`), and every `super::` path that climbs out of a top-level module, counts as
//! "this module depends on X". The files are tokenized with `proc_macro2`, so comments, doc
//! comments and string literals don't count and inline `mod name { ... }` blocks are followed.
//!
//! See the graph: `cargo test --test module_graph -- --nocapture`. Another tree (e.g. an older
//! checkout): `MODULE_GRAPH_SRC=/path/to/src cargo test --test module_graph -- --nocapture`.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → (module it uses → a file where it does).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The top-level modules: `src/X.rs` and `src/X/` (not the crate roots `lib.rs`, `main.rs`).
fn top_modules(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let p = e.unwrap().path();
        let Some(name) = p.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if p.is_dir()
            || (p.extension().is_some_and(|x| x == "rs") && name != "lib" && name != "main")
        {
            out.insert(name.to_string());
        }
    }
    out
}

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
/// `[net]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// The first name of each item of a `use` tree group: `{a, b::c, d as e}` → a, b, d.
fn group_heads(group: &TokenStream, out: &mut Vec<String>) {
    let mut at_item_start = true;
    for t in group.clone() {
        match t {
            TokenTree::Ident(i) if at_item_start => {
                out.push(i.to_string());
                at_item_start = false;
            }
            TokenTree::Group(g) if at_item_start && g.delimiter() == Delimiter::Brace => {
                group_heads(&g.stream(), out);
                at_item_start = false;
            }
            TokenTree::Punct(p) if p.as_char() == ',' => at_item_start = true,
            _ => at_item_start = false,
        }
    }
}

fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':')
}

/// The names that follow `crate::` (or a `super::` chain that climbs to the crate root) in
/// `tokens`, a file's or an inline module's contents at module path `here`.
fn crate_paths(tokens: TokenStream, here: &[String], out: &mut Vec<String>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Ident(kw) if kw == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(body))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    if body.delimiter() == Delimiter::Brace {
                        let mut inner = here.to_vec();
                        inner.push(name.to_string());
                        crate_paths(body.stream(), &inner, out);
                        i += 3;
                        continue;
                    }
                }
                i += 1;
            }
            TokenTree::Ident(root) if root == "crate" || root == "super" => {
                // How far up: `crate` = the root; each `super` = one level.
                let mut depth = if root == "crate" { Some(0) } else { None };
                let mut j = i;
                if root == "super" {
                    let mut ups = 0;
                    while matches!(tokens.get(j), Some(TokenTree::Ident(s)) if s == "super")
                        && is_path_sep(&tokens, j + 1)
                    {
                        ups += 1;
                        j += 3;
                    }
                    if ups > 0 {
                        // Back to the last `super`, so that `j + 3` is the name after it.
                        j -= 3;
                        depth = here.len().checked_sub(ups);
                    }
                }
                if depth == Some(0) && is_path_sep(&tokens, j + 1) {
                    match tokens.get(j + 3) {
                        Some(TokenTree::Ident(name)) => out.push(name.to_string()),
                        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                            group_heads(&g.stream(), out)
                        }
                        _ => {}
                    }
                }
                i = j + 1;
            }
            TokenTree::Group(g) => {
                crate_paths(g.stream(), here, out);
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// The dependency graph of the top-level modules under `src`.
fn graph(src: &Path) -> Graph {
    let tops = top_modules(src);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut g: Graph = tops.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for file in files {
        let here = module_path(src, &file);
        let Some(from) = here.first().filter(|m| tops.contains(*m)) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let tokens: TokenStream = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: cannot tokenize: {e:?}", file.display()));
        let mut names = Vec::new();
        crate_paths(tokens, &here, &mut names);
        let rel = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&file);
        for to in names {
            if tops.contains(&to) && &to != from {
                let edges = g.get_mut(from).unwrap();
                edges.entry(to).or_insert_with(|| rel.display().to_string());
            }
        }
    }
    g
}

/// The modules caught in cycles: the strongly connected components with more than one module
/// (Tarjan's algorithm). Each module of a component reaches every other one.
fn cycles(g: &Graph) -> Vec<BTreeSet<String>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        sccs: Vec<BTreeSet<&'a str>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.g.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.insert(w);
                    if w == v {
                        break;
                    }
                }
                self.sccs.push(scc);
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        sccs: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.sccs
        .into_iter()
        .filter(|s| s.len() > 1)
        .map(|s| s.into_iter().map(String::from).collect())
        .collect()
}

fn render(g: &Graph) -> String {
    let mut s = String::new();
    for (from, to) in g {
        let names: Vec<&str> = to.keys().map(String::as_str).collect();
        s.push_str(&format!("{from} -> {}\n", names.join(", ")));
    }
    s
}

#[test]
fn top_level_modules_have_no_dependency_cycles() {
    let src = std::env::var_os("MODULE_GRAPH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let g = graph(&src);
    println!("module graph of {}:\n{}", src.display(), render(&g));
    // The reader works: edges every version of the crate has are found.
    assert!(g["session"].contains_key("store"), "{}", render(&g));
    assert!(g["net"].contains_key("session"), "{}", render(&g));
    let found = cycles(&g);
    let explain: Vec<String> = found
        .iter()
        .map(|scc| {
            let inside: Vec<String> = scc
                .iter()
                .flat_map(|from| {
                    g[from]
                        .iter()
                        .filter(|(to, _)| scc.contains(*to))
                        .map(move |(to, file)| format!("  {from} -> {to} (e.g. {file})"))
                })
                .collect();
            let names: Vec<&str> = scc.iter().map(String::as_str).collect();
            format!(
                "modules in a cycle: {}; their edges:\n{}",
                names.join(", "),
                inside.join("\n")
            )
        })
        .collect();
    assert!(found.is_empty(), "{}", explain.join("\n"));
}

#[test]
fn reads_use_trees_super_chains_and_inline_modules() {
    let text = r#"
        //! Docs mention crate::docs_only, and so does "crate::in_a_string".
        use crate::{alpha, beta::Thing, gamma as g, {delta}};
        use super::epsilon; // from a top-level file, `super` is the crate root
        fn f() { let _ = crate::zeta::call(); log::info!("{}", crate::eta::X); }
        pub(crate) fn g() {}
        mod tests {
            use super::*;
            use super::super::theta;
            fn h() { super::not_a_root::x(); }
        }
    "#;
    let mut names = Vec::new();
    crate_paths(text.parse().unwrap(), &["top".to_string()], &mut names);
    names.sort();
    assert_eq!(
        names,
        ["alpha", "beta", "delta", "epsilon", "eta", "gamma", "theta", "zeta"]
    );
    // Two levels down (`top/sub.rs`), one `super` stays inside `top`.
    let mut names = Vec::new();
    let here = ["top".to_string(), "sub".to_string()];
    crate_paths(
        "use super::inside; use super::super::outside;"
            .parse()
            .unwrap(),
        &here,
        &mut names,
    );
    assert_eq!(names, ["outside"]);
}

#[test]
fn finds_cycles_and_only_cycles() {
    let graph_of = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), "f.rs".into());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let acyclic = graph_of(&[("cli", "config"), ("cli", "net"), ("net", "config")]);
    assert!(cycles(&acyclic).is_empty());
    let cyclic = graph_of(&[
        ("cli", "config"),
        ("config", "net"),
        ("net", "session"),
        ("session", "config"),
        ("cli", "sync"),
    ]);
    let found = cycles(&cyclic);
    let config_net_session = ["config", "net", "session"].map(String::from);
    assert_eq!(found, [BTreeSet::from(config_net_session)]);
}
