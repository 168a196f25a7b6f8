//! The page as the board's IDE, in a real browser (headless Chromium over
//! WebDriver) against the real test board: the terminal's glyphs, the
//! editor, its saves and conflicts, Run and Stop, drafts, and zip
//! downloads.

mod common;

use common::browser::{Browser, page_of};
use common::{LinkEmu, Mount, TestBoard, eventually, random_bytes};
use fantoccini::Locator;

/// `_` is drawn below the baseline: a line height that cuts the cell at
/// the font's baseline hid it (`__name__` read as `  name  `). A row of
/// underscores, printed by the board, has light pixels on the screen, at
/// 1x and 2x. And what a new user saw first: a prompt (not "Enter for a
/// prompt"), sizes in KB, no scratch names.
#[tokio::test(flavor = "multi_thread")]
async fn underscores_are_drawn_at_1x_and_2x_and_the_prompt_is_shown() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/big.bin"), vec![7u8; 300_000]).expect("seed");
    std::fs::write(tb.path("/.main.py.webrepl-upload"), "half").expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let url = page_of(&m);
    for scale in [1, 2] {
        let b = Browser::at_scale(scale).await;
        b.client.goto(&url).await.expect("open the page");
        b.until(10, "document.body.dataset.term === 'connected'")
            .await;
        if scale == 1 {
            b.until(
                10,
                "document.querySelector('.xterm-rows').innerText.trimEnd().endsWith('>>>')",
            )
            .await;
            b.until(10, "document.querySelector(\"#tree li[data-path='/big.bin'] .size\")?.textContent === '293.0 KB'")
                .await;
            assert_eq!(
                b.eval(
                    "!!document.querySelector(\"#tree li[data-path='/.main.py.webrepl-upload']\")"
                )
                .await,
                serde_json::json!(false)
            );
        }
        b.type_keys("print('_' * 24)\n").await;
        let row = "Array.from(document.querySelectorAll('.xterm-rows > div')).findIndex((d) => d.textContent.trim() === '_'.repeat(24))";
        b.until(10, &format!("{row} >= 0")).await;
        let i = b.eval(row).await;
        let css = format!(
            ".xterm-rows > div:nth-child({})",
            i.as_u64().expect("row") + 1
        );
        let lit = b.lit_pixels(&css).await;
        // 24 cells of a line at least one device pixel thick.
        assert!(
            lit >= 24 * 5 * scale as u64,
            "{lit} lit pixels in the row of underscores at {scale}x"
        );
        b.close().await;
    }
    assert!(m.unmount().status.success());
}

/// The editor's tabs as the page knows them.
async fn tabs(b: &Browser) -> serde_json::Value {
    b.eval("window.webreplMount.editor.tabs()").await
}

/// Clicks `path` in the page's file tree once it is shown.
async fn click_in_tree(b: &Browser, path: &str) {
    b.click_row_name(path).await;
}

/// The mount's page opened in `b`, with `path` open in the editor once
/// its text is `text`.
async fn open_in_editor(b: &Browser, m: &Mount, path: &str, text: &str) {
    b.client.goto(&page_of(m)).await.expect("open the page");
    click_in_tree(b, path).await;
    b.until(
        10,
        &format!(
            "window.webreplMount.editor.tabs()[0]?.text === {}",
            serde_json::json!(text)
        ),
    )
    .await;
}

/// Types into the editor as a person would (WebDriver key codes: Control
/// is \u{E009}, End \u{E010}, and \u{E000} lets go of the modifiers).
async fn type_in_editor(b: &Browser, keys: &str) {
    b.client
        .find(Locator::Css(".cm-content"))
        .await
        .expect("the editor")
        .send_keys(keys)
        .await
        .expect("typing in the editor");
}

const CTRL_END: &str = "\u{E009}\u{E010}\u{E000}";
const CTRL_S: &str = "\u{E009}s\u{E000}";

/// Open main.py from the panel, edit, Ctrl-S: the board has the edit. Then
/// code on the board changes it, and a save of the older version is a
/// conflict in words that loses neither. A draft survives a reload.
#[tokio::test(flavor = "multi_thread")]
async fn the_editor_saves_to_the_board_keeps_both_in_a_conflict_and_keeps_drafts() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('hello')\n").expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let url = page_of(&m);
    let b = Browser::start().await;
    b.client.goto(&url).await.expect("open the page");
    click_in_tree(&b, "/main.py").await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0]?.text === \"print('hello')\\n\"",
    )
    .await;
    type_in_editor(&b, &format!("{CTRL_END}x = 42{CTRL_S}")).await;
    b.until(20, "window.webreplMount.editor.tabs()[0].status === 'saved' && document.querySelector('#tabs .tab').dataset.state === 'saved'")
        .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py")).expect("main.py"),
        "print('hello')\nx = 42"
    );

    // Changed on the board meanwhile: the board's version stays, the
    // editor's goes beside it, the page says so, and the tab keeps it.
    let o = m.exec("open('main.py','w').write('board = 1\\n')");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    type_in_editor(&b, &format!("{CTRL_END}\ny = 2{CTRL_S}")).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'conflict'",
    )
    .await;
    let note = b.eval("document.getElementById('note').textContent").await;
    assert!(
        note.as_str()
            .is_some_and(|n| n.contains("changed on the board since you opened it")),
        "{note}"
    );
    let mine = "print('hello')\nx = 42\ny = 2";
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py")).expect("main.py"),
        "board = 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py.webrepl-mount-conflict")).expect("conflict file"),
        mine
    );
    assert_eq!(tabs(&b).await[0]["text"], serde_json::json!(mine));
    // The board's version, beside it.
    b.client
        .find(Locator::XPath(
            "//div[@id='note']/button[contains(., \"board's version\")]",
        ))
        .await
        .expect("the button")
        .click()
        .await
        .expect("click");
    b.until(
        10,
        "window.webreplMount.editor.tabs().some((t) => t.readOnly && t.text === 'board = 1\\n')",
    )
    .await;

    // A draft not saved survives a reload of the page.
    b.client
        .find(Locator::Css("#tabs .tab[aria-selected='false']"))
        .await
        .expect("the editor's tab")
        .click()
        .await
        .expect("click the tab");
    type_in_editor(&b, "\n# draft").await;
    b.until(10, "Object.keys(localStorage).some((k) => k.includes('draft') && localStorage[k].includes('# draft'))")
        .await;
    // (The browser's "leave the page?" for text not saved is WebDriver's
    // to accept: it does, as a person answering "Reload".)
    b.client.refresh().await.expect("reload");
    b.until(
        20,
        "window.webreplMount?.editor?.tabs().some((t) => t.text.endsWith('# draft')) === true",
    )
    .await;
    b.close().await;
    assert!(m.unmount().status.success());
}

/// Replaces the current editor tab's text (as a paste would), not saved.
async fn set_editor_text(b: &Browser, text: &str) {
    b.client
        .execute(
            "const v = window.webreplMount.editor.view;
             v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: arguments[0] } });",
            vec![serde_json::json!(text)],
        )
        .await
        .expect("set the editor's text");
}

const F5: &str = "\u{E035}";
const SHIFT_F5: &str = "\u{E008}\u{E035}\u{E000}";

/// New file makes it on the board and opens it; F5 runs the editor's text
/// (not saved) with its output in the terminal; Shift+F5 (Stop) interrupts
/// a `while True`, and the REPL answers again.
#[tokio::test(flavor = "multi_thread")]
async fn new_file_run_and_stop() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    b.until(10, "!!window.webreplMount.editor").await;
    b.client
        .find(Locator::Css("#new-file"))
        .await
        .expect("New file")
        .click()
        .await
        .expect("click New file");
    b.answer_dialog(Some("blink.py")).await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0]?.path === '/blink.py'",
    )
    .await;
    eventually(10, "blink.py on the board", || {
        std::fs::read(tb.path("/blink.py")).is_ok_and(|d| d.is_empty())
    });

    set_editor_text(&b, "print('ran', 6 * 7)\n").await;
    type_in_editor(&b, F5).await;
    b.until(
        20,
        "document.querySelector('.xterm-rows').innerText.includes('ran 42')",
    )
    .await;
    // Run took the text as it was: the board's file is still the saved one.
    assert_eq!(std::fs::read(tb.path("/blink.py")).expect("blink.py"), b"");

    set_editor_text(
        &b,
        "import time\nwhile True:\n    print('tick')\n    time.sleep(0.2)\n",
    )
    .await;
    type_in_editor(&b, F5).await;
    b.until(
        20,
        "document.querySelector('.xterm-rows').innerText.includes('tick\\ntick')",
    )
    .await;
    type_in_editor(&b, SHIFT_F5).await;
    b.until(
        20,
        "document.querySelector('.xterm-rows').innerText.includes('KeyboardInterrupt')",
    )
    .await;
    b.type_keys("print(6*7)\n").await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('\\n42')",
    )
    .await;
    // Reset: the board restarts, and the terminal shows its banner.
    assert_eq!(
        b.eval("document.querySelector('.xterm-rows').innerText.includes('MicroPython')")
            .await,
        serde_json::json!(false)
    );
    b.client
        .find(Locator::Css("#reset"))
        .await
        .expect("Reset")
        .click()
        .await
        .expect("click Reset");
    b.answer_dialog(None).await;
    b.until(
        30,
        "document.querySelector('.xterm-rows').innerText.includes('MicroPython')",
    )
    .await;
    b.close().await;
    assert!(m.unmount().status.success());
}

/// Whether the browser has written all of a zip: Chromium makes the
/// file under its name before the last bytes are in it.
fn whole_zip(path: &std::path::Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| zip::ZipArchive::new(f).is_ok())
}

/// The files in a zip the browser saved, by name.
fn unzip(path: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).expect("the zip");
    let mut z = zip::ZipArchive::new(f).expect("a valid zip");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).expect("an entry");
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read an entry");
        out.insert(e.name().expect("a UTF-8 name").to_string(), data);
    }
    out
}

/// A folder's zip holds its files byte for byte (and its empty folders);
/// ticked rows download as one zip and delete together.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_downloads_as_a_zip_and_ticked_rows_go_together() {
    let tb = TestBoard::start();
    let bin = common::random_bytes(20_000, 23);
    std::fs::create_dir_all(tb.path("/lib/sub")).expect("dirs");
    std::fs::create_dir_all(tb.path("/lib/empty")).expect("dirs");
    std::fs::write(tb.path("/lib/a.py"), "import sub\n").expect("seed");
    std::fs::write(tb.path("/lib/sub/b.bin"), &bin).expect("seed");
    std::fs::write(tb.path("/top.txt"), "top\n").expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.click_row("/lib", "zip").await;
    let saved = b.downloads.path().join("lib.zip");
    eventually(30, "lib.zip downloaded", || whole_zip(&saved));
    let got = unzip(&saved);
    let want: std::collections::BTreeMap<String, Vec<u8>> = [
        ("lib/", Vec::new()),
        ("lib/a.py", b"import sub\n".to_vec()),
        ("lib/empty/", Vec::new()),
        ("lib/sub/", Vec::new()),
        ("lib/sub/b.bin", bin.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);

    // Nothing ticked: no Download/Delete bar.
    const BAR: &str = "getComputedStyle(document.getElementById('selection')).display";
    assert_eq!(b.eval(BAR).await, serde_json::json!("none"));
    // Tick two rows: one zip of both, then one delete of both.
    for p in ["/lib", "/top.txt"] {
        b.client
            .find(Locator::Css(&format!("#tree li[data-path='{p}'] .tick")))
            .await
            .expect("the tick box")
            .click()
            .await
            .expect("tick");
    }
    b.client
        .find(Locator::Css("#zip-selected"))
        .await
        .expect("Download")
        .click()
        .await
        .expect("click Download");
    let both = || {
        std::fs::read_dir(b.downloads.path())
            .expect("downloads")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "zip") && !p.ends_with("lib.zip"))
    };
    eventually(30, "the ticked rows' zip", || {
        both().is_some_and(|p| whole_zip(&p))
    });
    let got = unzip(&both().expect("zip"));
    assert_eq!(got.get("top.txt").map(Vec::as_slice), Some(&b"top\n"[..]));
    assert_eq!(got.get("lib/sub/b.bin"), Some(&bin));
    b.client
        .find(Locator::Css("#delete-selected"))
        .await
        .expect("Delete")
        .click()
        .await
        .expect("click Delete");
    // The confirm names what goes.
    let asked = b.dialog_text().await;
    assert!(
        asked.contains("/lib") && asked.contains("/top.txt"),
        "{asked}"
    );
    b.answer_dialog(None).await;
    eventually(30, "both deleted on the board", || {
        !tb.path("/lib").exists() && !tb.path("/top.txt").exists()
    });
    b.until(10, &format!("{BAR} === 'none'")).await;
    b.close().await;
    assert!(m.unmount().status.success());
}

/// The focus colour of the page (app.css): a pane with the keyboard has a
/// border of it.
const FOCUS: &str = "rgb(102, 170, 255)";

/// Where the keyboard is: "editor", "terminal", the path of a file row
/// whose name has it, or the element's tag.
const WHERE: &str = "(() => { const a = document.activeElement;
    if (document.getElementById('editor').contains(a)) return 'editor';
    if (document.getElementById('terminal').contains(a)) return 'terminal';
    if (a.classList.contains('name') && a.closest('#tree li')) return a.closest('#tree li').dataset.path;
    return a.tagName; })()";

async fn focus_is(b: &Browser, want: &str) {
    b.until(10, &format!("{WHERE} === {:?}", want)).await;
}

async fn pane_border(b: &Browser, id: &str) -> serde_json::Value {
    b.eval(&format!(
        "getComputedStyle(document.getElementById('{id}')).borderTopColor"
    ))
    .await
}

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const CTRL_BACKQUOTE: &str = "\u{E009}`";
const CTRL_SHIFT_E: &str = "\u{E009}\u{E008}e";

/// Without a mouse: Tab to a file in the list (its focus drawn), Enter opens
/// it in the editor, Ctrl-S saves it, Ctrl+` goes to the terminal and back
/// (the pane with the keyboard has a coloured border), F5 from the terminal
/// runs the editor's file, Ctrl+Shift+E goes back to the files.
#[tokio::test(flavor = "multi_thread")]
async fn every_action_is_reachable_from_the_keyboard_with_the_focus_shown() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('hel' + 'lo')\n").expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    b.until(
        10,
        "!!document.querySelector(\"#tree li[data-path='/main.py'] .name\") && !!window.webreplMount.editor",
    )
    .await;
    let mut tabs_pressed = 0;
    while b.eval(WHERE).await != serde_json::json!("/main.py") {
        assert!(tabs_pressed < 60, "Tab never reached main.py in the list");
        b.press(TAB).await;
        tabs_pressed += 1;
    }
    assert_eq!(
        b.eval("getComputedStyle(document.activeElement).outlineStyle")
            .await,
        serde_json::json!("solid"),
        "the focused file name shows no focus"
    );
    b.press(ENTER).await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0]?.text === \"print('hel' + 'lo')\\n\"",
    )
    .await;
    focus_is(&b, "editor").await;
    assert_eq!(pane_border(&b, "editor").await, serde_json::json!(FOCUS));
    b.press(CTRL_END).await;
    b.press("x = 1").await;
    b.press(CTRL_S).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'saved'",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py")).expect("main.py"),
        "print('hel' + 'lo')\nx = 1"
    );

    b.press(CTRL_BACKQUOTE).await;
    focus_is(&b, "terminal").await;
    assert_eq!(pane_border(&b, "terminal").await, serde_json::json!(FOCUS));
    assert_ne!(pane_border(&b, "editor").await, serde_json::json!(FOCUS));
    b.press("print(6*7)").await;
    b.press(ENTER).await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('\\n42')",
    )
    .await;
    // F5 where the REPL has the keys runs the editor's file all the same.
    b.press(F5).await;
    b.until(
        20,
        "document.querySelector('.xterm-rows').innerText.includes('\\nhello')",
    )
    .await;
    focus_is(&b, "terminal").await;
    b.press(CTRL_BACKQUOTE).await;
    focus_is(&b, "editor").await;
    b.press(CTRL_SHIFT_E).await;
    focus_is(&b, "/main.py").await;
    b.close().await;
    assert!(m.unmount().status.success());
}

/// Whether leaving the page now would ask first: the browser's own test,
/// a cancelable `beforeunload` that a listener prevents.
const WOULD_ASK: &str = "(() => { const e = new Event('beforeunload', { cancelable: true });
    window.dispatchEvent(e); return e.defaultPrevented; })()";

/// Closing or reloading the tab asks first while the editor holds text not
/// saved on the board, and not once it is saved.
#[tokio::test(flavor = "multi_thread")]
async fn leaving_asks_first_while_text_is_not_saved() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 0\n").expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "!!window.webreplMount.editor").await;
    assert_eq!(b.eval(WOULD_ASK).await, serde_json::json!(false));
    b.click_row_name("/main.py").await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0]?.text === 'x = 0\\n'",
    )
    .await;
    assert_eq!(b.eval(WOULD_ASK).await, serde_json::json!(false));
    type_in_editor(&b, &format!("{CTRL_END}y = 1")).await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0].status === 'modified'",
    )
    .await;
    assert_eq!(b.eval(WOULD_ASK).await, serde_json::json!(true));
    type_in_editor(&b, CTRL_S).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'saved'",
    )
    .await;
    assert_eq!(b.eval(WOULD_ASK).await, serde_json::json!(false));
    b.close().await;
    assert!(m.unmount().status.success());
}

/// At a phone's width (400 x 800 CSS pixels) the panels stack: the files
/// above the editor above the terminal, each inside the window, none
/// wider than it, the editor and the terminal tall enough to use.
#[tokio::test(flavor = "multi_thread")]
async fn at_a_phones_width_the_panels_stack_inside_the_window() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 0\n").expect("seed");
    // More files than the panel shows at once.
    for i in 0..20 {
        std::fs::write(tb.path(&format!("/module_{i:02}.py")), "pass\n").expect("seed");
    }
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::phone().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    assert_eq!(
        b.eval("[innerWidth, innerHeight]").await,
        serde_json::json!([400, 800])
    );
    b.click_row_name("/main.py").await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0]?.text === 'x = 0\\n'",
    )
    .await;
    let outside = b
        .eval(
            "(() => {
            const out = [];
            const sel = ['header', 'header button', '#status', '#files', '#files .tools > *', '#tabs',
                         '#editor', '.cm-editor', '#terminal', '.xterm-screen'];
            for (const s of sel) for (const el of document.querySelectorAll(s)) {
                if (!el.getClientRects().length) continue;
                const r = el.getBoundingClientRect();
                if (r.left < -0.5 || r.top < -0.5 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5)
                    out.push(`${s} ${el.id || el.textContent.slice(0, 20)}: ${[r.left, r.top, r.right, r.bottom].map(Math.round)}`);
            }
            if (document.documentElement.scrollWidth > innerWidth) out.push(`page ${document.documentElement.scrollWidth} wide`);
            return out;
        })()",
        )
        .await;
    assert_eq!(outside, serde_json::json!([]), "cut off at 400 x 800");
    let rect = |id: &str| {
        format!(
            "(() => {{ const r = document.getElementById('{id}').getBoundingClientRect(); return [r.top, r.bottom, r.height]; }})()"
        )
    };
    let files = b.eval(&rect("files")).await;
    let editor = b.eval(&rect("editor")).await;
    let terminal = b.eval(&rect("terminal")).await;
    let f = |v: &serde_json::Value, i: usize| v[i].as_f64().expect("a number");
    assert!(
        f(&files, 1) <= f(&editor, 0) + 0.5 && f(&editor, 1) <= f(&terminal, 0) + 0.5,
        "not stacked: files {files}, editor {editor}, terminal {terminal}"
    );
    assert!(
        f(&editor, 2) >= 150.0 && f(&terminal, 2) >= 150.0,
        "too small to use: editor {editor}, terminal {terminal}"
    );
    // The terminal's columns fit its box: a line typed wraps inside.
    b.type_keys("print('=' * 100)\n").await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('=====')",
    )
    .await;
    let cols = b.eval("document.querySelector('.xterm-rows > div').getBoundingClientRect().right <= innerWidth").await;
    assert_eq!(cols, serde_json::json!(true));
    b.close().await;
    assert!(m.unmount().status.success());
}

/// The page is a REPL first: the editor's bundle (CodeMirror, 470 KB) is
/// fetched only once the terminal is connected, so parsing it does not
/// hold the terminal back; the editor then comes all the same.
#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_connects_before_the_editor_is_loaded() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(
        10,
        "document.body.dataset.term === 'connected' && !!window.webreplMount.editor",
    )
    .await;
    // The editor's bundle is fetched once the prompt and the files are
    // shown: compiled earlier, it held the prompt back.
    let order = b
        .eval(
            "[window.termReadyAt, window.promptAt, window.treeAt, performance.getEntriesByType('resource')
                .find((r) => new URL(r.name).pathname === '/page/editor.js').startTime]",
        )
        .await;
    let at = |i: usize| order[i].as_f64().expect("a time");
    for (i, what) in [
        (0, "the terminal connected"),
        (1, "the prompt was shown"),
        (2, "the files were shown"),
    ] {
        assert!(
            at(i) <= at(3),
            "the editor's bundle was fetched at {} ms, {what} at {} ms",
            at(3),
            at(i)
        );
    }
    b.close().await;
    assert!(m.unmount().status.success());
}

/// Bytes the mount has sent to the board and programs it ran there, from
/// its `status` ("traffic: X B to the board, Y B from it, N programs").
fn traffic(m: &Mount) -> (u64, u64) {
    let s = m.status();
    let n: Vec<u64> = s
        .lines()
        .find_map(|l| l.strip_prefix("traffic: "))
        .unwrap_or_else(|| panic!("no traffic in the status: {s}"))
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    (n[0], n[2])
}

/// A new file saved from the page goes to the board in one atomic upload
/// (its data, then the one program that checks and renames it), and the
/// mount sees it at once; through the mountpoint it went up under a
/// scratch name and was renamed (2 programs). A new file under a name the
/// board got meanwhile keeps the board's file and says conflict (through
/// the mountpoint it said saved).
#[test]
fn a_new_file_saved_from_the_page_is_one_upload() {
    use std::io::{Read, Write};
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/lib")).expect("seed");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    // The page's own request, without a page open: an open page's
    // periodic refresh may run a program of its own meanwhile.
    let url = page_of(&m);
    let (base, token) = url.split_once("/#").expect("a token");
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let put = |path: &str, body: &str| -> u64 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "PUT /api/file?path={path}&base=none HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Webrepl-Token: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{answer}"))
    };
    let before = traffic(&m);
    assert_eq!(put("/lib/new.py", "x = 1\n"), 200);
    let after = traffic(&m);
    assert_eq!(
        std::fs::read_to_string(tb.path("/lib/new.py")).expect("on the board"),
        "x = 1\n"
    );
    assert!(
        after.1 - before.1 <= 1,
        "{} programs ran on the board for a new file",
        after.1 - before.1
    );
    assert_eq!(
        std::fs::read_to_string(m.path().join("lib/new.py")).expect("in the mount"),
        "x = 1\n"
    );
    assert!(tb.parts("/lib").is_empty(), "{:?}", tb.parts("/lib"));
    // Made on the board behind the page's back: the page's new file
    // goes beside it, and the board's stays.
    std::fs::write(tb.path("/lib/other.py"), "board = 1\n").expect("seed");
    assert_eq!(put("/lib/other.py", "page = 1\n"), 409);
    assert_eq!(
        std::fs::read_to_string(tb.path("/lib/other.py")).expect("kept"),
        "board = 1\n"
    );
}

/// A file renamed or deleted from the panel while open: its tab follows
/// the rename and saves to the new name; deleted, it keeps its text and
/// Ctrl-S writes it there again (both were a false conflict on a file the
/// board did not have).
#[tokio::test(flavor = "multi_thread")]
async fn an_open_file_renamed_or_deleted_from_the_panel_keeps_its_tab_right() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/loop.py"), "n = 1\n").expect("seed");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    open_in_editor(&b, &m, "/loop.py", "n = 1\n").await;
    b.click_row("/loop.py", "rename").await;
    b.answer_dialog(Some("/spin.py")).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].path === '/spin.py'",
    )
    .await;
    type_in_editor(&b, &format!("{CTRL_END}m = 2{CTRL_S}")).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'saved'",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/spin.py")).expect("renamed"),
        "n = 1\nm = 2"
    );
    b.click_row("/spin.py", "delete").await;
    b.answer_dialog(None).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].message.includes('deleted')",
    )
    .await;
    assert!(!tb.path("/spin.py").exists());
    type_in_editor(&b, CTRL_S).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'saved'",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/spin.py")).expect("written again"),
        "n = 1\nm = 2"
    );
    let names: Vec<_> = std::fs::read_dir(tb.path("/"))
        .expect("flash")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("conflict")), "{names:?}");
    b.close().await;
}

/// Ctrl-S of a one-line change sends only the change, as the mount's own
/// saves do (the board's copy the editor opened is the delta's base), in
/// one program on the board (a scratch name renamed over the file took
/// two). The tab says saved once the board has it.
#[tokio::test(flavor = "multi_thread")]
async fn a_save_of_a_one_line_change_sends_only_the_change() {
    let tb = TestBoard::start();
    let text = common::hex_source(20_000, 9);
    std::fs::write(tb.path("/prog.py"), &text).expect("seed");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    click_in_tree(&b, "/prog.py").await;
    b.until(
        20,
        &format!(
            "window.webreplMount.editor.tabs()[0]?.text.length === {}",
            text.len()
        ),
    )
    .await;
    let before = traffic(&m);
    type_in_editor(&b, &format!("{CTRL_END}x = 42{CTRL_S}")).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'saved'",
    )
    .await;
    // Saved means on the board, not on its way.
    assert_eq!(
        std::fs::read_to_string(tb.path("/prog.py")).expect("prog.py"),
        format!("{text}x = 42")
    );
    let after = traffic(&m);
    let (sent, programs) = (after.0 - before.0, after.1 - before.1);
    assert!(
        sent < text.len() as u64 / 4,
        "{sent} bytes sent for a one-line edit of {} bytes",
        text.len()
    );
    // One atomic upload (its data, then the program that checks and
    // renames it), not an upload under a scratch name, then a rename (4).
    // The open page may refresh the board's free space meanwhile (a
    // program of its own, once in 5 s).
    assert!(
        programs <= 3,
        "{programs} programs ran on the board for a save"
    );
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
    b.close().await;
}

/// A save the board refuses (a full flash) says failed, leaves the board's
/// file as it was, and leaves nothing in the mount to be sent later.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_save_says_failed_and_is_never_sent_later() {
    let tb = TestBoard::with_flash_kb(64);
    let text: String = (0..600)
        .map(|i| format!("print('line {i:>6}')\n"))
        .collect();
    std::fs::write(tb.path("/prog.py"), &text).expect("seed");
    // Left: too little for the new version beside the old until it is whole.
    let path = std::ffi::CString::new(tb.path("/").to_str().expect("utf-8")).expect("path");
    // SAFETY: a plain statvfs into a zeroed struct we own.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut v) }, 0);
    let free = (v.f_bavail * v.f_frsize) as usize;
    std::fs::write(tb.path("/fill.bin"), vec![1u8; free.saturating_sub(4096)]).expect("fill");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    click_in_tree(&b, "/prog.py").await;
    b.until(
        20,
        &format!(
            "window.webreplMount.editor.tabs()[0]?.text.length === {}",
            text.len()
        ),
    )
    .await;
    type_in_editor(&b, &format!("{CTRL_END}x = 42{CTRL_S}")).await;
    b.until(
        30,
        "window.webreplMount.editor.tabs()[0].status === 'failed'",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/prog.py")).expect("prog.py"),
        text
    );
    // Nothing waits in the mount to go when space is made.
    let s = m.status();
    assert!(
        !s.lines()
            .any(|l| l.starts_with("dirty:") || l.starts_with("unsent:")),
        "{s}"
    );
    b.close().await;
}

/// ⟳ reads the board's tree now: a file the board's own code wrote with
/// no line typed at the REPL (a `_thread`, a timer) shows in the panel and
/// in the mount's own listing, within the 300 s the listing is trusted.
#[tokio::test(flavor = "multi_thread")]
async fn the_reread_button_shows_what_the_board_wrote_on_its_own() {
    let tb = TestBoard::start();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "window.treeAt > 0").await;
    // The mount has listed the root; the board's code writes behind it.
    let _ = std::fs::read_dir(m.path()).expect("ls").count();
    std::fs::write(tb.path("/bg.txt"), "written by a thread").expect("seed");
    b.client
        .find(Locator::Css("#refresh"))
        .await
        .expect("⟳")
        .click()
        .await
        .expect("click ⟳");
    b.until(
        10,
        "!!document.querySelector(\"#tree li[data-path='/bg.txt']\")",
    )
    .await;
    let names: Vec<String> = std::fs::read_dir(m.path())
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(names.contains(&"bg.txt".to_string()), "{names:?}");
    b.close().await;
}

/// "114.3 KB" as bytes (to the status line's rounding).
fn bytes_of(words: &str) -> f64 {
    let (n, unit) = words.trim().split_once(' ').unwrap_or((words, "B"));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("a size: {words:?}"));
    match unit {
        "KB" => n * 1024.0,
        "MB" => n * 1048576.0,
        _ => n,
    }
}

/// An upload at an ESP32's 20 KB/s shows in the status line as the user's
/// file, its bytes of its whole size, rising only (not each slice's
/// percentage, jumping back to 0, with "N waiting" slices), and its bar
/// follows the board, not the browser's instant copy to the page's server
/// (which held it at 90%). A `cp` into the mount is named too (not "a
/// file").
#[tokio::test(flavor = "multi_thread")]
async fn uploads_show_by_file_with_their_bytes_rising() {
    let tb = TestBoard::start();
    let emu = LinkEmu::slow(tb.port);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(20, "window.treeAt > 0").await;
    b.eval(
        "(window.samples = [], setInterval(() => window.samples.push([document.getElementById('status').textContent, document.querySelector('#uploads progress')?.value ?? null]), 100), true)",
    )
    .await;
    let local = tempfile::tempdir().expect("tempdir");
    let file = local.path().join("slow_big.bin");
    let big = random_bytes(117_000, 23);
    std::fs::write(&file, &big).expect("local file");
    b.pick(&file).await;
    eventually(60, "slow_big.bin on the board", || {
        std::fs::read(tb.path("/slow_big.bin")).is_ok_and(|d| d == big)
    });
    let copied = random_bytes(100_000, 24);
    let (to, data) = (m.path().join("cp_big.bin"), copied.clone());
    let cp = std::thread::spawn(move || std::fs::write(to, data));
    eventually(60, "cp_big.bin on the board", || {
        std::fs::read(tb.path("/cp_big.bin")).is_ok_and(|d| d == copied)
    });
    cp.join().expect("cp").expect("cp into the mount");
    let samples = b.eval("window.samples").await;
    let samples = samples.as_array().expect("samples");
    let (mut last, mut seen, mut bar, mut between, mut cp_named) =
        (0.0, Vec::new(), 0.0, false, false);
    for s in samples {
        let text = s[0].as_str().unwrap_or("");
        for part in text.split(" · ") {
            assert!(
                !part.contains(".wrm")
                    && !part.contains("a file")
                    && !part.contains("webrepl-upload")
                    && !part.contains("waiting"),
                "{text}"
            );
            if part.starts_with("↑ /cp_big.bin ") {
                cp_named = true;
            }
            let Some(rest) = part.strip_prefix("↑ /slow_big.bin ") else {
                continue;
            };
            let (done, total) = rest.split_once(" of ").expect(text);
            assert_eq!(total, "114.3 KB", "{text}");
            let done = bytes_of(done);
            assert!(done >= last, "went back: {text} after {last} B");
            last = done;
            if seen.last() != Some(&done) {
                seen.push(done);
            }
        }
        if let Some(v) = s[1].as_f64() {
            assert!(v >= bar, "the bar went back from {bar} to {v}");
            bar = v;
            between |= v > 0.2 && v < 0.85;
        }
    }
    assert!(seen.len() >= 4, "too few steps seen: {seen:?}");
    assert!(between, "the bar never showed the board's progress");
    assert!(cp_named, "the cp into the mount was never named");
    b.close().await;
}

/// Contrast of each text token against what is drawn behind it (the
/// nearest box with a background), by WCAG's formula: the lowest, with its
/// text.
const CONTRAST: &str = r#"(() => {
  const rgb = (c) => c.match(/[\d.]+/g).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).slice(0, 3).map((v) => v / 255).map((x) => (x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      const v = rgb(c);
      if (v.length < 4 || v[3] > 0) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const ratio = (el) => {
    const [x, y] = [lum(getComputedStyle(el).color), lum(bg(el))];
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  };
  let worst = [99, ''];
  for (const el of document.querySelectorAll('.cm-line, .cm-line span, .cm-gutterElement, .cm-panel input, .cm-panel label')) {
    if (!el.textContent.trim() && el.tagName !== 'INPUT') continue;
    const r = ratio(el);
    if (r < worst[0]) worst = [r, el.tagName + ' ' + (el.textContent || el.value).slice(0, 30)];
  }
  return { worst, gutter: lum(bg(document.querySelector('.cm-gutters'))), panel: lum(bg(document.querySelector('.cm-panels') || document.body)) };
})()"#;

/// The editor on the page's dark background: every token (keywords,
/// names, comments, strings; on the current line too), the line numbers
/// and the search panel read at 4.5:1 or more, on dark boxes (CodeMirror's
/// light colours read at 1.7:1 on a light gutter). Python indents by 4
/// spaces, a file indented its own way keeps its way.
#[tokio::test(flavor = "multi_thread")]
async fn the_editor_is_dark_readable_and_indents_as_python() {
    let tb = TestBoard::start();
    std::fs::write(
        tb.path("/main.py"),
        "# a comment\nimport time\ndef blink(n=3):\n    '''blinks'''\n    return None  # the current line\n",
    )
    .expect("seed");
    std::fs::write(tb.path("/two.py"), "if True:\n  x = 1\n").expect("seed");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    click_in_tree(&b, "/main.py").await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0]?.text.includes('blink')",
    )
    .await;
    // The cursor on the last line: a comment on the current line's colour.
    type_in_editor(&b, &format!("{CTRL_END}\u{E012}\u{E012}")).await;
    type_in_editor(&b, "\u{E009}f\u{E000}").await;
    b.until(10, "!!document.querySelector('.cm-panels .cm-search')")
        .await;
    let c = b.eval(CONTRAST).await;
    let worst = c["worst"][0].as_f64().expect("contrast");
    assert!(worst >= 4.5, "{c}");
    assert!(c["gutter"].as_f64().expect("gutter") < 0.05, "{c}");
    assert!(c["panel"].as_f64().expect("panel") < 0.05, "{c}");
    b.eval("window.webreplMount.editor.view.focus() || true")
        .await;
    b.press("\u{E00C}").await;
    type_in_editor(&b, &format!("{CTRL_END}\nif True:\nx")).await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0].text.endsWith('\\nif True:\\n    x')",
    )
    .await;
    click_in_tree(&b, "/two.py").await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[1]?.text.includes('x = 1')",
    )
    .await;
    type_in_editor(&b, &format!("{CTRL_END}\nif x:\ny")).await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[1].text.endsWith('\\nif x:\\n  y')",
    )
    .await;
    b.close().await;
}

/// Ctrl-S while a program runs: within a second or two the page says the
/// board runs a program, with Stop as the way, and the text stays modified
/// (it waited 20 s, then said "failed" and "waited 10 s"). Stop, Ctrl-S
/// again: saved.
#[tokio::test(flavor = "multi_thread")]
async fn a_save_while_a_program_runs_says_so_at_once_and_offers_stop() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").expect("seed");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    open_in_editor(&b, &m, "/main.py", "x = 1\n").await;
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    // Short sleeps: Ctrl-C reaches the board between them.
    b.type_keys("exec('import time\\nwhile True: time.sleep(0.1)')\n")
        .await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('sleep(0.1)')",
    )
    .await;
    type_in_editor(&b, &format!("{CTRL_END}y = 2{CTRL_S}")).await;
    let asked = std::time::Instant::now();
    b.until(
        5,
        "(() => { const t = window.webreplMount.editor.tabs()[0]; return t.status === 'modified' && /running a program/.test(t.message) && /Stop/.test(document.getElementById('note').textContent); })()",
    )
    .await;
    let took = asked.elapsed();
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py")).expect("main.py"),
        "x = 1\n"
    );
    b.client
        .find(Locator::Css("#note button"))
        .await
        .expect("Stop in the note")
        .click()
        .await
        .expect("click Stop");
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('KeyboardInterrupt')",
    )
    .await;
    type_in_editor(&b, CTRL_S).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'saved'",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py")).expect("main.py"),
        "x = 1\ny = 2"
    );
    // The save refused while the program ran never went later.
    assert!(!tb.path("/main.py.webrepl-mount-conflict").exists());
    b.close().await;
}

/// Run's scratch (the editor's text not saved, run from a file) is ours:
/// never in `ls` of the mount nor in the panel (`.webrepl-run.py` was).
#[tokio::test(flavor = "multi_thread")]
async fn runs_scratch_is_not_shown_in_the_mount() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").expect("seed");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    click_in_tree(&b, "/main.py").await;
    b.until(
        10,
        "window.webreplMount.editor.tabs()[0]?.text === 'x = 1\\n'",
    )
    .await;
    type_in_editor(&b, &format!("{CTRL_END}print('ran', 6 * 7){F5}")).await;
    b.until(
        20,
        "document.querySelector('.xterm-rows').innerText.includes('ran 42')",
    )
    .await;
    let shown = |m: &Mount| -> Vec<String> {
        std::fs::read_dir(m.path())
            .expect("ls")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    };
    // Whatever the mount knew of the board's root, checked again.
    b.client
        .find(Locator::Css("#refresh"))
        .await
        .expect("⟳")
        .click()
        .await
        .expect("click ⟳");
    b.until(
        10,
        "!!document.querySelector(\"#tree li[data-path='/main.py']\")",
    )
    .await;
    assert_eq!(shown(&m), vec!["main.py".to_string()]);
    assert_eq!(
        b.eval("document.querySelectorAll('#tree li').length").await,
        serde_json::json!(1)
    );
    b.close().await;
}

/// Ctrl-S while the link is down says so at once and keeps the text
/// modified (it said "saving…" for 30 s and more, then "failed" once the
/// link was back, unsent). Back, Ctrl-S again: saved.
#[tokio::test(flavor = "multi_thread")]
async fn a_save_while_the_link_is_down_says_offline_at_once() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").expect("seed");
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let b = Browser::start().await;
    open_in_editor(&b, &m, "/main.py", "x = 1\n").await;
    emu.command("refuse on");
    emu.command("cut");
    b.until(15, "document.getElementById('status').className === 'down'")
        .await;
    type_in_editor(&b, &format!("{CTRL_END}y = 2{CTRL_S}")).await;
    let asked = std::time::Instant::now();
    b.until(
        5,
        "(() => { const t = window.webreplMount.editor.tabs()[0]; return t.status === 'modified' && /^offline/.test(t.message) && /offline/.test(document.getElementById('note').textContent); })()",
    )
    .await;
    let took = asked.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    emu.command("refuse off");
    b.until(30, "document.getElementById('status').className === 'up'")
        .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py")).expect("main.py"),
        "x = 1\n"
    );
    type_in_editor(&b, CTRL_S).await;
    b.until(
        20,
        "window.webreplMount.editor.tabs()[0].status === 'saved'",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(tb.path("/main.py")).expect("main.py"),
        "x = 1\ny = 2"
    );
    assert!(!tb.path("/main.py.webrepl-mount-conflict").exists());
    b.close().await;
}
