//! The snapshot of the board's tree: inodes, names, sizes, and what the
//! mount knows beyond the board (modes and times set by the user, files that
//! exist only here).

use crate::board::{Entry, EntryKind};
use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

pub type Ino = u64;
pub const ROOT: Ino = 1;

#[derive(Debug, Clone)]
pub struct Node {
    pub parent: Ino,
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    /// The board's mtime, in the board's epoch (0 when it keeps none).
    pub board_mtime: i64,
    /// Permission bits set by the user; the board cannot store them.
    pub mode: Option<u32>,
    /// Modification time set by the user (or of the last local write).
    pub mtime: Option<SystemTime>,
    /// The board has this file or directory under this path.
    pub on_board: bool,
    /// An editor dropping: lives only in the mount, never uploaded.
    pub local_only: bool,
    /// Directories: entries by name.
    pub children: BTreeMap<String, Ino>,
    /// Directories: when the board last listed it.
    pub listed: Option<Instant>,
}

impl Node {
    pub fn new(parent: Ino, name: &str, kind: EntryKind) -> Node {
        Node {
            parent,
            name: name.to_string(),
            kind,
            size: 0,
            board_mtime: 0,
            mode: None,
            mtime: None,
            on_board: false,
            local_only: false,
            children: BTreeMap::new(),
            listed: None,
        }
    }
}

#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<Ino, Node>,
    next: Ino,
}

impl Default for Tree {
    fn default() -> Self {
        let mut root = Node::new(ROOT, "", EntryKind::Dir);
        root.on_board = true;
        Tree {
            nodes: HashMap::from([(ROOT, root)]),
            next: ROOT + 1,
        }
    }
}

impl Tree {
    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    pub fn lookup(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.nodes.get(&parent)?.children.get(name).copied()
    }

    /// The board path of a node.
    pub fn path(&self, ino: Ino) -> String {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let Some(n) = self.nodes.get(&at) else { break };
            parts.push(n.name.as_str());
            at = n.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The board path a child called `name` of `parent` would have.
    pub fn child_path(&self, parent: Ino, name: &str) -> String {
        let p = self.path(parent);
        if p == "/" {
            format!("/{name}")
        } else {
            format!("{p}/{name}")
        }
    }

    pub fn resolve(&self, path: &str) -> Option<Ino> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(ROOT, |at, c| self.lookup(at, c))
    }

    /// Adds `node` under its parent, replacing (and forgetting) any node of
    /// that name.
    pub fn insert(&mut self, node: Node) -> Ino {
        if let Some(old) = self.lookup(node.parent, &node.name) {
            self.remove(old);
        }
        let ino = self.next;
        self.next += 1;
        if let Some(p) = self.nodes.get_mut(&node.parent) {
            p.children.insert(node.name.clone(), ino);
        }
        self.nodes.insert(ino, node);
        ino
    }

    /// Detaches a node and forgets it and everything below it.
    pub fn remove(&mut self, ino: Ino) {
        if ino == ROOT {
            return;
        }
        if let Some(n) = self.nodes.get(&ino) {
            let (parent, name) = (n.parent, n.name.clone());
            if let Some(p) = self.nodes.get_mut(&parent)
                && p.children.get(&name) == Some(&ino)
            {
                p.children.remove(&name);
            }
        }
        let mut stack = vec![ino];
        while let Some(i) = stack.pop() {
            if let Some(n) = self.nodes.remove(&i) {
                stack.extend(n.children.values());
            }
        }
    }

    /// Moves a node, replacing whatever had the new name.
    pub fn rename(&mut self, ino: Ino, parent: Ino, name: &str) {
        if let Some(old) = self.lookup(parent, name)
            && old != ino
        {
            self.remove(old);
        }
        let Some(n) = self.nodes.get(&ino) else {
            return;
        };
        let (op, on) = (n.parent, n.name.clone());
        if let Some(p) = self.nodes.get_mut(&op) {
            p.children.remove(&on);
        }
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children.insert(name.to_string(), ino);
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.parent = parent;
            n.name = name.to_string();
        }
    }

    /// Every node below `ino` (not itself), depth first.
    pub fn descendants(&self, ino: Ino) -> Vec<Ino> {
        let mut out = Vec::new();
        let mut stack: Vec<Ino> = self
            .nodes
            .get(&ino)
            .map(|n| n.children.values().copied().collect())
            .unwrap_or_default();
        while let Some(i) = stack.pop() {
            out.push(i);
            if let Some(n) = self.nodes.get(&i) {
                stack.extend(n.children.values());
            }
        }
        out
    }

    /// Builds the tree below `top` from a deep listing of the board.
    pub fn load(&mut self, top: Ino, mut entries: Vec<Entry>, hidden: &dyn Fn(&str) -> bool) {
        let now = Instant::now();
        // Parents before children.
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let base = self.path(top);
        if let Some(n) = self.nodes.get_mut(&top) {
            n.listed = Some(now);
        }
        for e in entries {
            let Some(rel) = e.path.strip_prefix(&base) else {
                continue;
            };
            let rel = rel.trim_start_matches('/');
            let (dir, name) = match rel.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", rel),
            };
            if hidden(name) {
                continue;
            }
            let parent = dir
                .split('/')
                .filter(|c| !c.is_empty())
                .try_fold(top, |at, c| self.lookup(at, c));
            let Some(parent) = parent else { continue };
            let mut node = Node::new(parent, name, e.kind);
            node.size = if e.kind == EntryKind::File { e.size } else { 0 };
            node.board_mtime = e.mtime;
            node.on_board = true;
            if e.kind == EntryKind::Dir {
                node.listed = Some(now);
            }
            self.insert(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind,
            size,
            mtime: 7,
        }
    }

    #[test]
    fn loads_a_deep_listing_in_any_order() {
        let mut t = Tree::default();
        t.load(
            ROOT,
            vec![
                entry("/lib/a/x.py", EntryKind::File, 3),
                entry("/main.py", EntryKind::File, 10),
                entry("/lib", EntryKind::Dir, 0),
                entry("/lib/a", EntryKind::Dir, 0),
                entry("/lib/.wrm-part", EntryKind::File, 1),
            ],
            &|n| n == ".wrm-part",
        );
        let x = t.resolve("/lib/a/x.py").unwrap();
        assert_eq!(t.get(x).unwrap().size, 3);
        assert_eq!(t.path(x), "/lib/a/x.py");
        assert!(t.resolve("/lib/.wrm-part").is_none());
        assert_eq!(t.descendants(ROOT).len(), 4);
    }

    #[test]
    fn rename_moves_subtrees_and_replaces_targets() {
        let mut t = Tree::default();
        t.load(
            ROOT,
            vec![
                entry("/d", EntryKind::Dir, 0),
                entry("/d/f", EntryKind::File, 1),
                entry("/g", EntryKind::File, 2),
            ],
            &|_| false,
        );
        let d = t.resolve("/d").unwrap();
        let f = t.resolve("/d/f").unwrap();
        let e = t.insert(Node::new(ROOT, "e", EntryKind::Dir));
        t.rename(d, e, "moved");
        assert_eq!(t.path(f), "/e/moved/f");
        let g = t.resolve("/g").unwrap();
        t.rename(g, e, "moved");
        assert!(t.get(f).is_none(), "the replaced directory is forgotten");
        assert_eq!(t.resolve("/e/moved"), Some(g));
        t.remove(e);
        assert!(t.get(g).is_none());
        assert_eq!(t.get(ROOT).unwrap().children.len(), 0);
    }
}
