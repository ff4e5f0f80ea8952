//! `cargo xtask cycles`: no module of ours imports a module that imports it back, directly or through
//! others. Each crate's `src/` is read as text: every file is a module (`a/b.rs` and `a/b/mod.rs` are
//! `a::b`), and a file depends on another when it names a path into it: `use crate::…`, `super::…`,
//! `self::…`, a path written out in the code (`crate::dpop::check`), or a path through a module it
//! declares itself (`mod grants;` then `grants::exchange`). Test modules (`#[cfg(test)] mod … { … }`) are
//! left out: a test may use what it tests. A cycle is a strongly connected group of two or more files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One file, as a module.
struct Module {
    file: PathBuf,
    /// Its path below the crate root (`["tokens", "grants"]`); empty for `lib.rs`/`main.rs`.
    path: Vec<String>,
    text: String,
}

/// Checks every crate under `crates/` and `xtask`; fails listing each cycle.
pub fn check(root: &Path) -> Result<()> {
    let mut crate_dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .context("reading crates/")?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("src").is_dir())
        .collect();
    crate_dirs.push(root.join("xtask"));
    crate_dirs.push(root.join("tests"));
    crate_dirs.sort();
    let mut found = Vec::new();
    let mut files = 0;
    for dir in &crate_dirs {
        let modules = read_crate(&dir.join("src"))?;
        files += modules.len();
        for cycle in cycles(&modules) {
            let names: Vec<String> = cycle
                .iter()
                .map(|&index| {
                    modules[index]
                        .file
                        .strip_prefix(root)
                        .unwrap_or(&modules[index].file)
                        .display()
                        .to_string()
                })
                .collect();
            found.push(names.join(" <-> "));
        }
    }
    if !found.is_empty() {
        bail!(
            "import cycles (a module imports a module that imports it back):\n  {}",
            found.join("\n  ")
        );
    }
    eprintln!(
        "xtask: no import cycles among {files} source files of {} crates",
        crate_dirs.len()
    );
    Ok(())
}

fn read_crate(src: &Path) -> Result<Vec<Module>> {
    let mut modules = Vec::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap_or(&path);
            let mut parts: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            let file_name = parts.pop().unwrap_or_default();
            let stem = file_name.trim_end_matches(".rs").to_owned();
            // `mod.rs`, and `lib.rs` or `main.rs` at the root, are the module of their directory.
            let owns_directory =
                stem == "mod" || (parts.is_empty() && matches!(stem.as_str(), "lib" | "main"));
            if !owns_directory {
                parts.push(stem);
            }
            // A binary's `main.rs` beside a `lib.rs` is its own crate: it reaches the library by name.
            if parts.is_empty() && file_name == "main.rs" && src.join("lib.rs").is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            modules.push(Module {
                file: path,
                path: parts,
                text: without_tests_and_comments(&text),
            });
        }
    }
    modules.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(modules)
}

/// The text without comments, string literals and `#[cfg(test)]` modules.
fn without_tests_and_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let rest = &text[index..];
        if rest.starts_with("//") {
            index += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            index += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if let Some(item) = rest.strip_prefix("#[cfg(test)]") {
            // Skip the attribute and the item it guards: up to its matching closing brace, or its `;`.
            let open = item.find('{');
            let semicolon = item.find(';');
            match (open, semicolon) {
                (Some(open), semicolon) if semicolon.is_none_or(|semi| open < semi) => {
                    let mut depth = 0usize;
                    let mut end = item.len();
                    for (offset, character) in item[open..].char_indices() {
                        match character {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = open + offset + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    index += "#[cfg(test)]".len() + end;
                }
                (_, Some(semi)) => index += "#[cfg(test)]".len() + semi + 1,
                _ => index = bytes.len(),
            }
        } else if rest.starts_with('"') {
            // A string literal, escapes included.
            let mut escaped = false;
            let mut end = rest.len();
            for (offset, character) in rest.char_indices().skip(1) {
                match character {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = offset + 1;
                        break;
                    }
                    _ => {}
                }
            }
            out.push_str("\"\"");
            index += end;
        } else if rest.starts_with("r#\"") {
            index += rest.find("\"#").map_or(rest.len(), |end| end + 2);
        } else if rest.starts_with('\'') && rest[1..].chars().nth(1) == Some('\'') {
            // A character literal such as '"' or '{'.
            index += 1 + rest[1..].chars().next().map_or(0, char::len_utf8) + 1;
        } else if let Some(escaped) = rest.strip_prefix("'\\") {
            index += escaped.find('\'').map_or(rest.len(), |end| end + 3);
        } else {
            let character = rest.chars().next().unwrap_or(' ');
            out.push(character);
            index += character.len_utf8();
        }
    }
    out
}

fn is_ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Every path of the form `a::b::c` in `text` (with `use` trees expanded), as segments.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    // `use` statements, with their brace trees.
    let mut search = text;
    while let Some(start) = search.find("use ") {
        let before = &search[..start];
        let at_word_start = before
            .bytes()
            .last()
            .is_none_or(|byte| !is_ident_byte(byte));
        let rest = &search[start + 4..];
        let end = rest.find(';').unwrap_or(rest.len());
        if at_word_start {
            let tree = compact(&rest[..end]);
            expand(&tree, &mut Vec::new(), &mut found);
        }
        search = &rest[end.min(rest.len())..];
    }
    // Paths written out in the code.
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if is_ident_byte(bytes[index]) && (index == 0 || !is_ident_byte(bytes[index - 1])) {
            let mut segments = Vec::new();
            let mut cursor = index;
            loop {
                let start = cursor;
                while cursor < bytes.len() && is_ident_byte(bytes[cursor]) {
                    cursor += 1;
                }
                segments.push(text[start..cursor].to_owned());
                if text[cursor..].starts_with("::")
                    && bytes
                        .get(cursor + 2)
                        .is_some_and(|&byte| is_ident_byte(byte))
                {
                    cursor += 2;
                } else {
                    break;
                }
            }
            if segments.len() > 1 {
                found.push(segments);
            }
            index = cursor.max(index + 1);
        } else {
            index += 1;
        }
    }
    found
}

/// A `use` tree with white space only where it separates words (`X as Y`).
fn compact(tree: &str) -> String {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut out = words.join(" ");
    for token in ["::", "{", "}", ","] {
        out = out
            .replace(&format!(" {token}"), token)
            .replace(&format!("{token} "), token);
    }
    out
}

/// Expands a `use` tree (`crate::{a::{b, c}, d}`) into its paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let (head, group) = match tree.find('{') {
        Some(open) if tree.ends_with('}') => (&tree[..open], Some(&tree[open + 1..tree.len() - 1])),
        _ => (tree, None),
    };
    let depth = prefix.len();
    for segment in head.split("::").filter(|segment| !segment.is_empty()) {
        // `X as Y` names X.
        let segment = segment.split(' ').next().unwrap_or(segment);
        prefix.push(segment.to_owned());
    }
    match group {
        Some(group) => {
            let mut level = 0;
            let mut start = 0;
            for (offset, character) in group.char_indices() {
                match character {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        expand(&group[start..offset], prefix, out);
                        start = offset + 1;
                    }
                    _ => {}
                }
            }
            expand(&group[start..], prefix, out);
        }
        None if prefix.len() > depth => out.push(prefix.clone()),
        None => {}
    }
    prefix.truncate(depth);
}

/// The modules a module depends on.
fn dependencies(modules: &[Module], index: usize) -> BTreeSet<usize> {
    let by_path: BTreeMap<&[String], usize> = modules
        .iter()
        .enumerate()
        .map(|(index, module)| (module.path.as_slice(), index))
        .collect();
    let module = &modules[index];
    // What `self` means here: the module itself; `super` is its parent.
    let own = &module.path;
    let declared: BTreeSet<String> = module
        .text
        .split([';', '{'])
        .filter_map(|statement| {
            let words: Vec<&str> = statement.split_whitespace().collect();
            let at = words.iter().position(|word| *word == "mod")?;
            (at + 2 == words.len()).then(|| words[at + 1].to_owned())
        })
        .collect();
    let mut found = BTreeSet::new();
    for path in paths(&module.text) {
        let mut absolute: Vec<String> = match path[0].as_str() {
            "crate" => Vec::new(),
            "self" => own.clone(),
            "super" => {
                let mut parent = own.clone();
                let mut rest = &path[..];
                while rest.first().is_some_and(|segment| segment == "super") {
                    parent.pop();
                    rest = &rest[1..];
                }
                parent.extend(rest.iter().cloned());
                resolve(&by_path, &parent, index, &mut found);
                continue;
            }
            first if declared.contains(first) => {
                let mut child = own.clone();
                child.push(first.to_owned());
                child
            }
            _ => continue,
        };
        absolute.extend(path[1..].iter().cloned());
        resolve(&by_path, &absolute, index, &mut found);
    }
    found
}

/// The longest prefix of `path` that names one of our modules.
fn resolve(
    by_path: &BTreeMap<&[String], usize>,
    path: &[String],
    from: usize,
    found: &mut BTreeSet<usize>,
) {
    for length in (1..=path.len()).rev() {
        if let Some(&target) = by_path.get(&path[..length]) {
            if target != from {
                found.insert(target);
            }
            return;
        }
    }
}

/// Strongly connected groups of two or more modules (Tarjan's algorithm).
fn cycles(modules: &[Module]) -> Vec<Vec<usize>> {
    let edges: Vec<BTreeSet<usize>> = (0..modules.len())
        .map(|index| dependencies(modules, index))
        .collect();
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        next: usize,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        groups: Vec<Vec<usize>>,
    }
    fn visit(state: &mut State<'_>, node: usize) {
        state.index[node] = Some(state.next);
        state.low[node] = state.next;
        state.next += 1;
        state.stack.push(node);
        state.on_stack[node] = true;
        for &next in state.edges[node].iter() {
            match state.index[next] {
                None => {
                    visit(state, next);
                    state.low[node] = state.low[node].min(state.low[next]);
                }
                Some(index) if state.on_stack[next] => {
                    state.low[node] = state.low[node].min(index);
                }
                Some(_) => {}
            }
        }
        if Some(state.low[node]) == state.index[node] {
            let mut group = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack[member] = false;
                group.push(member);
                if member == node {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort_unstable();
                state.groups.push(group);
            }
        }
    }
    let mut state = State {
        edges: &edges,
        next: 0,
        index: vec![None; modules.len()],
        low: vec![0; modules.len()],
        stack: Vec::new(),
        on_stack: vec![false; modules.len()],
        groups: Vec::new(),
    };
    for node in 0..modules.len() {
        if state.index[node].is_none() {
            visit(&mut state, node);
        }
    }
    state.groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &[&str], text: &str) -> Module {
        Module {
            file: PathBuf::from(path.join("/")),
            path: path.iter().map(|part| part.to_string()).collect(),
            text: without_tests_and_comments(text),
        }
    }

    #[test]
    fn use_trees_and_written_paths_are_found() {
        let found = paths("use crate::{a::{B, c::D}, e};\nfn f() { crate::g::h(); }");
        assert!(found.contains(&vec!["crate".into(), "a".into(), "B".into()]));
        assert!(found.contains(&vec!["crate".into(), "a".into(), "c".into(), "D".into()]));
        assert!(found.contains(&vec!["crate".into(), "e".into()]));
        assert!(found.contains(&vec!["crate".into(), "g".into(), "h".into()]));
    }

    #[test]
    fn a_cycle_through_three_modules_is_found_and_tests_and_comments_are_not_arrows() {
        let modules = vec![
            module(&["a"], "use crate::b::X;"),
            module(&["b"], "fn f() { crate::c::y(); }"),
            module(&["c"], "use super::a::Z;"),
            module(
                &["d"],
                "// use crate::a::X;\n#[cfg(test)]\nmod tests { use crate::a::X; }\nconst S: &str = \"crate::a::X\";",
            ),
        ];
        assert_eq!(cycles(&modules), vec![vec![0, 1, 2]]);
        assert!(dependencies(&modules, 3).is_empty());
    }

    #[test]
    fn a_parent_that_dispatches_to_a_child_that_imports_it_back_is_a_cycle() {
        let modules = vec![
            module(&["grants"], "mod refresh;\nfn x() { refresh::grant(); }"),
            module(&["grants", "refresh"], "use super::resolve_scope;"),
        ];
        // `super` of `grants::refresh` is `grants`.
        assert_eq!(cycles(&modules), vec![vec![0, 1]]);
    }
}
