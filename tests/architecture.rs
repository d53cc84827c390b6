//! The layering rule, as a test: every top-level module of `src/` sits in one layer, uses only
//! modules of its own layer or of layers below it, and no two top-level modules use each other
//! (directly or round a longer circle). The edges are read from the sources themselves (`use
//! crate::…`, paths such as `crate::quant::quantize(..)`, and in the binary `quantbench::…`), test
//! code (`#[cfg(test)]`) excluded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, lowest first, each with the one sentence that says what it holds.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base: ONNX files and tensors, paths, atomic file writes, host facts, the job service",
        &["paths", "fileio", "host", "jobs", "onnx", "tensor"],
    ),
    (
        "runtimes: tract and ONNX Runtime behind one Backend",
        &["runtime"],
    ),
    (
        "data: sources, preprocessing, descriptions",
        &["data"],
    ),
    (
        "taps: the float model and copies of a quantized one in one graph, per-layer tensors compared",
        &["taps"],
    ),
    (
        "quantization: config, calibration, rewrite, recovery",
        &["quant"],
    ),
    (
        "measuring: accuracy, fidelity, per-layer error, latency",
        &["eval", "bench"],
    ),
    (
        "experiments: sessions, run profiles, the runner, tables",
        &["session", "profile", "runner", "report"],
    ),
    (
        "search and plans: tune, sensitivity, plans for schedulers",
        &["tune", "sensitivity", "plan"],
    ),
    ("faces: the command line and the window", &["main", "cli", "gui"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// Top-level module → the top-level modules it names.
type Edges = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a source file belongs to (`src/quant/rewrite/mod.rs` → `quant`).
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Collects the top-level modules a file's non-test code names.
struct Names<'a> {
    /// Path roots that mean "a top-level module follows": `crate`, and `quantbench` in the binary.
    roots: &'a [&'a str],
    found: BTreeSet<String>,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::List(l) if l.path.is_ident("cfg") => {
            let condition = l.tokens.to_string();
            condition.contains("test") && !condition.contains("not")
        }
        _ => false,
    })
}

impl Names<'_> {
    fn root_then(&mut self, root: &str, next: &str) {
        if self.roots.contains(&root) {
            self.found.insert(next.to_string());
        }
    }

    /// Paths inside macro invocations are tokens, not syntax: `crate :: quant` in them.
    fn scan_tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let flat: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
        for (i, t) in flat.iter().enumerate() {
            match t {
                proc_macro2::TokenTree::Group(g) => self.scan_tokens(g.stream()),
                proc_macro2::TokenTree::Ident(root) => {
                    if let (
                        Some(proc_macro2::TokenTree::Punct(a)),
                        Some(proc_macro2::TokenTree::Punct(b)),
                        Some(proc_macro2::TokenTree::Ident(next)),
                    ) = (flat.get(i + 1), flat.get(i + 2), flat.get(i + 3))
                    {
                        if a.as_char() == ':' && b.as_char() == ':' {
                            self.root_then(&root.to_string(), &next.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, parent: Option<&str>) {
        match tree {
            syn::UseTree::Path(p) => {
                let ident = p.ident.to_string();
                match parent {
                    Some(root) => self.root_then(root, &ident),
                    None => self.use_tree(&p.tree, Some(&ident)),
                }
            }
            syn::UseTree::Name(n) => {
                if let Some(root) = parent {
                    self.root_then(root, &n.ident.to_string());
                }
            }
            syn::UseTree::Rename(r) => {
                if let Some(root) = parent {
                    self.root_then(root, &r.ident.to_string());
                }
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, parent);
                }
            }
            syn::UseTree::Glob(_) => {}
        }
    }
}

impl<'ast> Visit<'ast> for Names<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if is_test_only(attrs) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&u.tree, None);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if let [root, next, ..] = segments.as_slice() {
            self.root_then(root, next);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.scan_tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The edges between top-level modules of the sources given as (path under `src/`, text).
fn edges_of(files: &[(PathBuf, String)]) -> Result<Edges, String> {
    let mut edges = Edges::new();
    for (relative, text) in files {
        let module = module_of(relative);
        if module == "lib" {
            continue;
        }
        let in_binary = module == "main" || module == "cli" || module == "gui";
        let roots: &[&str] = if in_binary {
            &["crate", "quantbench"]
        } else {
            &["crate"]
        };
        let file = syn::parse_file(text).map_err(|e| format!("{}: {e}", relative.display()))?;
        let mut names = Names {
            roots,
            found: BTreeSet::new(),
        };
        names.visit_file(&file);
        let entry = edges.entry(module.clone()).or_default();
        entry.extend(names.found.into_iter().filter(|n| *n != module));
    }
    Ok(edges)
}

/// What breaks the rule: modules in no layer, edges upwards, and circles.
fn violations(edges: &Edges) -> Vec<String> {
    let mut out = vec![];
    for (from, tos) in edges {
        let Some(lf) = layer_of(from) else {
            out.push(format!(
                "src/{from}: in no layer (add it to LAYERS in tests/architecture.rs)"
            ));
            continue;
        };
        for to in tos {
            match layer_of(to) {
                None => out.push(format!("{from} -> {to}: {to} is in no layer")),
                Some(lt) if lt > lf => out.push(format!(
                    "{from} -> {to}: upwards, from \"{}\" to \"{}\"",
                    LAYERS[lf].0, LAYERS[lt].0
                )),
                Some(_) => {}
            }
        }
    }
    out.extend(
        cycles(edges)
            .into_iter()
            .map(|c| format!("circle: {}", c.join(" -> "))),
    );
    out
}

/// Each circle of modules, found by a depth-first walk (one per back edge).
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    fn walk(
        node: &str,
        edges: &Edges,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = stack.iter().position(|s| s == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node.to_string());
            found.push(circle);
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            walk(next, edges, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut found = vec![];
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        walk(node, edges, &mut vec![], &mut done, &mut found);
    }
    found
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("src/ is readable").path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file is text");
            out.push((
                path.strip_prefix(root).expect("under src/").to_path_buf(),
                text,
            ));
        }
    }
}

fn project_edges() -> Edges {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &src, &mut files);
    files.sort();
    edges_of(&files).expect("every source file parses")
}

#[test]
fn every_module_uses_only_its_own_layer_and_those_below_with_no_circle() {
    let edges = project_edges();
    let broken = violations(&edges);
    let map: Vec<String> = edges
        .iter()
        .map(|(from, tos)| {
            format!(
                "  {from} -> {}",
                tos.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        broken.is_empty(),
        "the layering rule is broken:\n  {}\nthe edges:\n{}",
        broken.join("\n  "),
        map.join("\n")
    );
    // The map is read for real: the faces use the engine, the engine's top uses its bottom.
    assert!(edges["cli"].contains("runner"), "{:?}", edges["cli"]);
    assert!(edges["quant"].contains("onnx"), "{:?}", edges["quant"]);
}

fn file(path: &str, text: &str) -> (PathBuf, String) {
    (PathBuf::from(path), text.to_string())
}

#[test]
fn an_upward_import_is_found_in_a_use_a_path_or_a_macro() {
    for text in [
        "use crate::tune::Goal;",
        "use crate::{onnx, tune::{self, Goal}};",
        "fn f() { let _ = crate::tune::grid(); }",
        "fn f() { let _ = format!(\"{}\", crate::tune::NAME); }",
    ] {
        let edges = edges_of(&[file("quant/mod.rs", text)]).unwrap();
        let broken = violations(&edges);
        assert_eq!(broken.len(), 1, "{text}: {broken:?}");
        assert!(
            broken[0].starts_with("quant -> tune: upwards"),
            "{text}: {broken:?}"
        );
    }
}

#[test]
fn test_code_and_downward_edges_pass() {
    let edges = edges_of(&[file(
        "quant/mod.rs",
        "use crate::onnx::pb;\n#[cfg(test)]\nmod tests { use crate::eval::score; }",
    )])
    .unwrap();
    assert!(violations(&edges).is_empty(), "{edges:?}");
    assert_eq!(edges["quant"], BTreeSet::from(["onnx".to_string()]));
}

#[test]
fn a_circle_inside_one_layer_is_found() {
    let edges = edges_of(&[
        file("eval/mod.rs", "use crate::bench::BenchReport;"),
        file("bench/mod.rs", "use crate::eval::EvalReport;"),
    ])
    .unwrap();
    let broken = violations(&edges);
    assert_eq!(broken, vec!["circle: bench -> eval -> bench".to_string()]);
}

#[test]
fn a_module_outside_every_layer_is_named() {
    let edges = edges_of(&[file("extras.rs", "use crate::onnx::pb;")]).unwrap();
    let broken = violations(&edges);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].contains("src/extras: in no layer"), "{broken:?}");
}

#[test]
fn the_binary_names_the_library_by_its_crate_name() {
    let edges = edges_of(&[file(
        "gui/app.rs",
        "use quantbench::runner::Runner; fn f() { crate::cli::run(); }",
    )])
    .unwrap();
    assert_eq!(
        edges["gui"],
        BTreeSet::from(["cli".to_string(), "runner".to_string()])
    );
}
