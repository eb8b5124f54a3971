//! Dependencies between the files of `src/` run one way. This reads every
//! `crate::…` and `super::…` path in `src/` (outside comments), resolves
//! it to the file that defines the module, and finds the loops (strongly
//! connected components of more than one file). `KNOWN_LOOPS` lists the
//! loops not yet broken: the test fails when a new one appears, and when a
//! known one is gone but still listed, so the list only shrinks. Then the
//! same between the subsystem folders (`src/agent/`, `src/net/`, …), where
//! no loop is allowed at all, and no file may sit outside a folder but
//! `lib.rs` and `main.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each loop still to break, as its sorted files (none left).
const KNOWN_LOOPS: &[&[&str]] = &[];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/net/resolve/wire.rs` is `net::resolve::wire`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file defining the longest prefix of `path` that is a module.
fn resolve(src: &Path, path: &[String]) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let base = path[..n].iter().fold(src.to_path_buf(), |p, s| p.join(s));
        for f in [base.with_extension("rs"), base.join("mod.rs")] {
            if f.is_file() {
                return Some(f);
            }
        }
    }
    None
}

/// Every `crate::a::b` / `super::a` path in `text`, as module segments
/// (lower-case identifiers only: a type or function ends the path), with
/// `crate::{a, b::c}` groups expanded one level.
fn paths(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let code: String = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let b = code.as_bytes();
    for (start, root) in [("crate::", None), ("super::", Some(()))] {
        let mut at = 0;
        while let Some(i) = code[at..].find(start) {
            let i = at + i;
            at = i + start.len();
            if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
                continue;
            }
            let base: Vec<String> = match root {
                None => Vec::new(),
                Some(()) => {
                    // The parent of this file's module (a mod.rs is its
                    // folder's module, so its parent is the folder's).
                    let mut p = here.to_vec();
                    p.pop();
                    p
                }
            };
            let rest = &code[at..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let mut p = base.clone();
                    p.extend(segments(item.trim()));
                    out.push(p);
                }
            } else {
                let mut p = base.clone();
                p.extend(segments(rest));
                out.push(p);
            }
        }
    }
    out
}

fn segments(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for seg in s.split("::") {
        let id: String = seg
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if id.is_empty() || !id.starts_with(|c: char| c.is_ascii_lowercase()) {
            break;
        }
        out.push(id.clone());
        if id.len() != seg.len() {
            break;
        }
    }
    out
}

/// Tarjan's strongly connected components.
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

#[test]
fn files_in_src_import_each_other_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let name = |f: &Path| f.strip_prefix(&src).unwrap().display().to_string();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &all {
        let here = module_of(&src, f);
        let text = std::fs::read_to_string(f).unwrap();
        let from = name(f);
        let deps = graph.entry(from.clone()).or_default();
        for p in paths(&text, &here) {
            if let Some(to) = resolve(&src, &p) {
                let to = name(&to);
                if to != from && to != "lib.rs" {
                    deps.insert(to);
                }
            }
        }
    }
    let found = loops(&graph);
    let known: Vec<Vec<String>> = KNOWN_LOOPS
        .iter()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .collect();
    let new: Vec<&Vec<String>> = found.iter().filter(|l| !known.contains(l)).collect();
    let gone: Vec<&Vec<String>> = known.iter().filter(|l| !found.contains(l)).collect();
    let explain = |l: &Vec<String>| -> String {
        l.iter()
            .map(|f| {
                let inside: Vec<&String> = graph[f].iter().filter(|t| l.contains(t)).collect();
                format!("  {f} -> {inside:?}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        new.is_empty(),
        "new loops between files of src/:\n{}",
        new.iter()
            .map(|l| explain(l))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(
        gone.is_empty(),
        "loops broken: remove them from KNOWN_LOOPS: {gone:?}"
    );

    // The same between subsystems: each file stands for its folder, and
    // the folders form a stack, each importing only those below it.
    let folder = |f: &str| f.split('/').next().unwrap_or(f).to_string();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, deps) in &graph {
        let loose = !from.contains('/') && from != "lib.rs" && from != "main.rs";
        assert!(!loose, "{from} is not in a subsystem folder of src/");
        let entry = folders.entry(folder(from)).or_default();
        for to in deps {
            if folder(to) != folder(from) {
                entry.insert(folder(to));
            }
        }
    }
    let found = loops(&folders);
    assert!(
        found.is_empty(),
        "loops between the folders of src/:\n{}",
        found
            .iter()
            .map(|l| l
                .iter()
                .map(|f| {
                    let why: Vec<String> = graph
                        .iter()
                        .filter(|(from, _)| folder(from) == *f)
                        .flat_map(|(from, deps)| {
                            deps.iter()
                                .filter(|t| folder(t) != *f && l.contains(&folder(t)))
                                .map(move |t| format!("{from} -> {t}"))
                        })
                        .collect();
                    format!("  {f}: {why:?}")
                })
                .collect::<Vec<_>>()
                .join("\n"))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// The README's map names every file of `src/`: by its whole path, or by
/// its name on a row that names another file of its folder by whole path.
/// A folder's `mod.rs` is named by any row of its folder (the map says
/// each folder's `mod.rs` holds its header).
#[test]
fn the_readme_map_names_every_file_of_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let map = &readme[readme.find("## Map").expect("README has a Map section")..];
    let rows: Vec<&str> = map.lines().filter(|l| l.starts_with('|')).collect();
    let mut all = Vec::new();
    files(&root.join("src"), &mut all);
    let mut missing = Vec::new();
    for f in &all {
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        let dir = &rel[..rel.rfind('/').unwrap() + 1];
        let name = &rel[dir.len()..];
        let named = rows.iter().any(|r| {
            r.contains(&format!("`{rel}`"))
                || (name == "mod.rs" && r.contains(&format!("`{dir}")))
                || (r.contains(&format!("`{name}`")) && r.contains(&format!("`{dir}")))
        });
        if !named {
            missing.push(rel);
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "files of src/ the README map does not name: {missing:?}"
    );
}
