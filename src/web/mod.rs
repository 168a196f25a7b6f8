//! The local page: the board's terminal and files in a browser tab, on the
//! session everything else uses (what webrepl.html does, without taking the
//! board's one connection). It listens on 127.0.0.1 unless told otherwise;
//! see `guard` for who may use it. Everything it serves is in the binary.

mod archive;
mod files;
mod guard;
mod limits;

pub use files::Files;

use crate::error::{Error, Kind, Result};
use crate::session::Session;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use guard::Guard;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const INDEX: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");
/// xterm.js and its fit addon, bundled by build.rs.
const XTERM_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/npm/terminal.js"));
const XTERM_CSS: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/npm/node_modules/@xterm/xterm/css/xterm.css"
));
const IDE_JS: &str = include_str!("page/ide.js");
const EDITOR_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/npm/editor.js"));

/// Files larger than this are refused rather than held in memory.
const UPLOAD_LIMIT: usize = 16 << 20;

struct Page {
    session: Session,
    files: Files,
    guard: Guard,
    /// What the page shows as the board's name.
    board: String,
    /// Free space, asked after changes only: asking costs a program on the
    /// board, which would interleave with the user's typing.
    space: Mutex<Option<files::Space>>,
}

/// The status line's transfers by the user's names: an upload goes as
/// slices into part files (`.wrm-…`), which say nothing to a person, and
/// each slice's progress starts again at 0. The board tells its uploads by
/// file instead, the bytes of all its slices summed; the page's own scratch
/// name is the file it will become.
fn shown_transfers(
    moving: &[crate::session::Moving],
    uploads: &[crate::session::Moving],
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for m in moving {
        let name = m.path.rsplit('/').next().unwrap_or("");
        if !crate::board::is_part(name) && !files::hidden(name) {
            out.push(serde_json::json!({
                "path": m.path, "upload": m.upload, "done": m.done, "total": m.total
            }));
        }
    }
    for m in uploads {
        out.push(serde_json::json!({
            "path": files::user_name(&m.path), "upload": true, "done": m.done, "total": m.total
        }));
    }
    out
}

/// A running page server.
pub struct Served {
    /// With the token in its fragment: what the user opens.
    pub url: String,
    pub task: tokio::task::JoinHandle<()>,
}

/// `[ADDR:]PORT` (a bare port listens on 127.0.0.1).
pub fn parse_listen(s: &str) -> Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| Error::Usage(crate::error::Usage::PageAddress { arg: s.to_string() }))
}

/// For "any free port": the board's own port, from its address, in a
/// range the system does not hand out to outgoing connections.
fn own_port(listen: SocketAddr, board: &str) -> Option<SocketAddr> {
    if listen.port() != 0 {
        return None;
    }
    let h = board.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let port = 20_000 + (h % 10_000) as u16;
    Some(SocketAddr::new(listen.ip(), port))
}

pub async fn start(
    listen: SocketAddr,
    session: Session,
    files: Files,
    board: String,
) -> Result<Served> {
    let listener = match own_port(listen, &board) {
        // The browser keeps a page's drafts per address: a port of the
        // board's own (when free) brings them back after a remount.
        Some(own) => match tokio::net::TcpListener::bind(own).await {
            Ok(l) => Ok(l),
            Err(_) => tokio::net::TcpListener::bind(listen).await,
        },
        None => tokio::net::TcpListener::bind(listen).await,
    }
    .map_err(|e| {
        Error::Setup(crate::error::Setup::Listen {
            addr: listen.to_string(),
            why: e.to_string(),
        })
    })?;
    let addr = listener.local_addr()?;
    let token = guard::random_hex();
    let page = Arc::new(Page {
        session,
        files,
        guard: Guard::new(token.clone(), addr),
        board,
        space: Mutex::new(None),
    });
    page.clone().refresh_space();
    let app = Router::new()
        .route("/", get(index))
        .route("/page/{name}", get(asset))
        .route("/term", get(term))
        .route("/api/ticket", post(ticket))
        .route("/api/status", get(status))
        .route("/api/tree", get(tree))
        .route("/api/file", get(download).put(upload))
        .route("/api/remove", post(remove))
        .route("/api/rename", post(rename))
        .route("/api/mkdir", post(mkdir))
        .route("/api/run", post(run))
        .route("/api/reset", post(reset))
        .route("/api/zip", get(zip))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT))
        .layer(middleware::from_fn_with_state(page.clone(), guard))
        .with_state(page);
    let task = tokio::spawn(limits::serve(listener, app));
    let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    Ok(Served {
        url: format!("http://{host}/#{token}"),
        task,
    })
}

async fn guard(State(page): State<Arc<Page>>, req: Request, next: Next) -> Response {
    match page.guard.check(req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err((code, why)) => {
            tracing::info!("page: refused {} {}: {why}", req.method(), req.uri().path());
            (code, why).into_response()
        }
    }
}

async fn index(State(page): State<Arc<Page>>) -> Response {
    // The shell is public (the token arrives in its fragment): nothing of
    // the board in it, not even its address, which comes with the status.
    let html = INDEX
        .replace(
            "{{live}}",
            &matches!(page.files, Files::Mount(..)).to_string(),
        )
        .replace("{{v}}", assets_version());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Asked again each time: it names this binary's assets.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// The assets' hash: the page asks for `/page/NAME?v=HASH`, which the
/// browser may keep for good (a second visit compiles from its cache), and
/// a new binary's page names new ones.
fn assets_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for a in [
            APP_JS.as_bytes(),
            APP_CSS.as_bytes(),
            XTERM_JS,
            XTERM_CSS,
            IDE_JS.as_bytes(),
            EDITOR_JS,
        ] {
            h.update((a.len() as u64).to_le_bytes());
            h.update(a);
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

async fn asset(UrlPath(name): UrlPath<String>, RawQuery(q): RawQuery) -> Response {
    // Kept for good only under this binary's version (see assets_version).
    let cache = if q.as_deref() == Some(&format!("v={}", assets_version())) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let (kind, body): (&str, &'static [u8]) = match name.as_str() {
        "app.js" => ("text/javascript", APP_JS.as_bytes()),
        "app.css" => ("text/css", APP_CSS.as_bytes()),
        "xterm.js" => ("text/javascript", XTERM_JS),
        "xterm.css" => ("text/css", XTERM_CSS),
        "ide.js" => ("text/javascript", IDE_JS.as_bytes()),
        "editor.js" => ("text/javascript", EDITOR_JS),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
        body,
    )
        .into_response()
}

/// One WebSocket or download (see `guard`).
async fn ticket(State(page): State<Arc<Page>>) -> Response {
    Json(serde_json::json!({"ticket": page.guard.ticket()})).into_response()
}

/// The REPL: keystrokes in, the board's output out, with the same flow
/// control as `term` (the next message is read only once the last keys
/// were taken), so a long paste reaches the board whole.
async fn term(State(page): State<Arc<Page>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| terminal(page.session.clone(), socket))
}

async fn terminal(session: Session, mut socket: WebSocket) {
    let Ok((line, mut output)) = session.attach().await else {
        return;
    };
    // The prompt (or whatever the REPL's line shows) at once; Enter only
    // while the board has not yet said where its REPL is.
    let first = match line {
        Some(line) => socket.send(Message::Binary(line.into())).await,
        None => session.keys(b"\r".to_vec()).await.map_err(axum::Error::new),
    };
    if first.is_err() {
        return;
    }
    loop {
        tokio::select! {
            m = socket.recv() => {
                let keys = match m {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => return,
                };
                if session.keys(keys).await.is_err() {
                    return;
                }
            }
            o = output.recv() => match o {
                Ok(bytes) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
        }
    }
}

async fn status(State(page): State<Arc<Page>>) -> Response {
    let space = *page.space.lock().unwrap_or_else(|p| p.into_inner());
    let st = match page.session.status().await {
        Ok(st) => st,
        Err(e) => return fail(e),
    };
    let link = if st.link_up {
        "up"
    } else if st.idle_closed {
        "idle"
    } else {
        "down"
    };
    let board = match &page.files {
        Files::Mount(_, core) => core.board(),
        Files::Board(b) => b,
    };
    let transfers = shown_transfers(&st.moving, &board.uploads_moving());
    // Slices of uploads wait as parts: the transfers above tell them.
    let queued = st
        .queued
        .iter()
        .filter(|m| {
            let name = m.path.rsplit('/').next().unwrap_or("");
            !crate::board::is_part(name) && !files::hidden(name)
        })
        .count();
    // The mount's changes are not sent to another board at its address.
    let held = match &page.files {
        Files::Mount(_, core) => core.held(),
        Files::Board(_) => None,
    };
    Json(serde_json::json!({
        "board": page.board,
        "link": link,
        "down": st.down.map(|(d, why)| {
            let why = why.map(|e| e.to_string()).unwrap_or_default();
            format!("down for {} s: {why}", d.as_secs())
        }),
        "waiting": st.waiting.map(|(_, why)| why),
        "transfers": transfers,
        "queued": queued,
        "held": held,
        "free": space.map(|s| s.0),
        "total": space.map(|s| s.1),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct Tree {
    /// Set by ⟳: the board's tree checked now, not the snapshot's.
    reread: Option<String>,
}

async fn tree(State(page): State<Arc<Page>>, Query(q): Query<Tree>) -> Response {
    if q.reread.is_some()
        && let Files::Mount(_, core) = &page.files
    {
        core.recheck();
    }
    match page.files.tree().await {
        Ok(all) => Json(all).into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
struct OnePath {
    path: String,
}

#[derive(Deserialize)]
struct Save {
    path: String,
    /// The version the editor opened; without it, a plain upload.
    base: Option<String>,
}

#[derive(Deserialize)]
struct TwoPaths {
    from: String,
    to: String,
}

async fn download(State(page): State<Arc<Page>>, Query(q): Query<OnePath>) -> Response {
    match page.files.read(&q.path).await {
        Ok(data) => {
            let name = q.path.rsplit('/').next().unwrap_or("file");
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_DISPOSITION, attachment(name)),
                    (VERSION.clone(), files::version(&data)),
                ],
                data,
            )
                .into_response()
        }
        Err(e) => fail(e),
    }
}

/// `Content-Disposition` for a board's name, whatever it holds (a newline
/// made the header invalid: 500): a plain ASCII fallback, and the exact
/// name percent-encoded as RFC 6266 and 5987 describe.
fn attachment(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let exact: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

/// The editor's file version, on a download and a save's answer.
static VERSION: header::HeaderName = header::HeaderName::from_static("x-webrepl-version");

async fn upload(State(page): State<Arc<Page>>, Query(q): Query<Save>, body: Bytes) -> Response {
    let Some(base) = q.base else {
        let r = page.files.write(&q.path, body).await;
        return page.changed(r);
    };
    let r = save_while_linked(&page, &q.path, body, base).await;
    page.clone().refresh_space();
    let r = match r {
        Ok(r) => r,
        Err(Offline(why)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "error": format!(
                        "offline ({why}): {} is kept here, not saved; Ctrl-S again when the board is back",
                        q.path
                    ),
                    "offline": true,
                })),
            )
                .into_response();
        }
    };
    match r {
        Ok(files::Saved::Done(v)) => {
            ([(VERSION.clone(), v)], Json(serde_json::json!({"ok": true}))).into_response()
        }
        Ok(files::Saved::Conflict { now, kept }) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": format!(
                    "{} changed on the board since you opened it: the board's version stays, yours was saved beside it as {kept} (and stays here)",
                    q.path
                ),
                "conflict": kept,
                "now": now,
            })),
        )
            .into_response(),
        // The editor keeps the text as modified, and offers Stop.
        Err(e @ Error::Running { .. }) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": format!(
                    "{e}: {} is not saved (kept here). Stop the program (■ Stop, Shift+F5), then Ctrl-S again",
                    q.path
                ),
                "running": true,
            })),
        )
            .into_response(),
        Err(e) => fail(e),
    }
}

/// Why the link is down (not merely closed while idle).
struct Offline(String);

/// The link is down (not merely closed while idle): why.
async fn link_down(page: &Page) -> Option<String> {
    let st = page.session.status().await.ok()?;
    if st.link_up || st.idle_closed {
        return None;
    }
    Some(st.down.map_or_else(
        || "the link is down".into(),
        |(_, why)| why.map(|e| e.to_string()).unwrap_or_default(),
    ))
}

/// The editor's save, said to be offline at once when the link is down,
/// or goes down meanwhile: it waited for the link (30 s and more of
/// "saving…") to say "failed" once it was back. Given up then, before it
/// can go on a new link: an upload under way is tied to the link it began
/// on, and one not begun never starts.
async fn save_while_linked(
    page: &Page,
    path: &str,
    body: Bytes,
    base: String,
) -> std::result::Result<Result<files::Saved>, Offline> {
    if let Some(why) = link_down(page).await {
        return Err(Offline(why));
    }
    let mut link = page.session.link_state();
    let save = page.files.save(path, body, &base);
    tokio::pin!(save);
    loop {
        tokio::select! {
            r = &mut save => return Ok(r),
            changed = link.changed() => {
                if changed.is_err() {
                    return Ok(save.await);
                }
                if !*link.borrow_and_update()
                    && let Some(why) = link_down(page).await
                {
                    return Err(Offline(why));
                }
            }
        }
    }
}

async fn remove(State(page): State<Arc<Page>>, Query(q): Query<OnePath>) -> Response {
    let r = page.files.remove(&q.path).await;
    page.changed(r)
}

async fn rename(State(page): State<Arc<Page>>, Query(q): Query<TwoPaths>) -> Response {
    let r = page.files.rename(&q.from, &q.to).await;
    page.changed(r)
}

async fn mkdir(State(page): State<Arc<Page>>, Query(q): Query<OnePath>) -> Response {
    let r = page.files.mkdir(&q.path).await;
    page.changed(r)
}

/// Typed at the REPL, as a person would, so its output is in the terminal
/// and Ctrl-C there stops it. With a body (the editor's text, saved or
/// not), that text runs, from a scratch file: typed or pasted, a long file
/// would echo line by line before its output.
async fn run(State(page): State<Arc<Page>>, Query(q): Query<OnePath>, body: Bytes) -> Response {
    let target = if body.is_empty() {
        q.path
    } else {
        if let Err(e) = page.files.put_run_scratch(body).await {
            return fail(e);
        }
        files::RUN_SCRATCH.to_string()
    };
    let path = match crate::board::normalize(&target) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let plain = path
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '\'' && c != '\\');
    let name = if plain {
        format!("'{path}'")
    } else {
        crate::board::snippets::lit(&path)
    };
    let line = format!("exec(open({name}).read())\r");
    match page.session.keys(line.into_bytes()).await {
        Ok(()) => Json(serde_json::json!({"ok": true})).into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
struct Zip {
    /// A JSON array of the board paths ticked (files and folders).
    paths: String,
}

/// Files and folders as one zip, streamed as each file is read.
async fn zip(State(page): State<Arc<Page>>, Query(q): Query<Zip>) -> Response {
    let paths: Vec<String> = match serde_json::from_str(&q.paths) {
        Ok(p) => p,
        Err(e) => {
            return fail(Error::Usage(crate::error::Usage::PagePaths {
                why: e.to_string(),
            }));
        }
    };
    if paths.is_empty() || paths.len() > archive::MAX_FILES {
        return fail(Error::Limit(crate::error::Limit::Ticked {
            most: archive::MAX_FILES,
        }));
    }
    let tree = match page.files.tree().await {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let plan = match archive::plan(&tree, &paths) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let name = match paths.as_slice() {
        [one] if !one.trim_matches('/').is_empty() => {
            format!(
                "{}.zip",
                one.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("board")
            )
        }
        _ => format!("{}.zip", page.board.replace([':', '/'], "_")),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(archive::stream(page.files.clone(), plan, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, attachment(&name)),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// Soft reset: the board restarts its program; a terminal then shows the
/// banner and a prompt.
async fn reset(State(page): State<Arc<Page>>) -> Response {
    match page.session.reset().await {
        Ok(()) => {
            let _ = page.session.keys(b"\x02".to_vec()).await;
            Json(serde_json::json!({"ok": true})).into_response()
        }
        Err(e) => fail(e),
    }
}

impl Page {
    fn changed(self: Arc<Self>, r: Result<()>) -> Response {
        self.clone().refresh_space();
        match r {
            Ok(()) => Json(serde_json::json!({"ok": true})).into_response(),
            Err(e) => fail(e),
        }
    }

    fn refresh_space(self: Arc<Self>) {
        tokio::spawn(async move {
            if let Ok(s) = self.files.space().await {
                *self.space.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
            }
        });
    }
}

/// An error as the page shows it: its words, with a status that says what
/// kind of trouble it is.
fn fail(e: Error) -> Response {
    let code = match e.kind() {
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Busy | Kind::Running | Kind::Conflict => StatusCode::CONFLICT,
        Kind::LinkLost | Kind::Unreachable | Kind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Os(libc::ENOSPC) => StatusCode::INSUFFICIENT_STORAGE,
        Kind::Invalid | Kind::Os(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, Json(serde_json::json!({"error": e.to_string()}))).into_response()
}

#[cfg(test)]
mod attachment_tests {
    #[test]
    fn any_board_name_makes_a_valid_header() {
        for name in [
            "main.py",
            "nl\nname",
            "q\"uote",
            "ä ö.py",
            "\u{202e}gnp.exe",
        ] {
            let v = super::attachment(name);
            assert!(axum::http::HeaderValue::from_str(&v).is_ok(), "{v}");
        }
        assert_eq!(
            super::attachment("a b\n.py"),
            "attachment; filename=\"a b_.py\"; filename*=UTF-8''a%20b%0A.py"
        );
    }
}
