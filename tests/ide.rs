//! The page as the board's IDE, in a real browser (headless Chromium over
//! WebDriver) against the real test board: the terminal's glyphs, the
//! editor, its saves and conflicts, Run and Stop, drafts, and zip
//! downloads.

mod common;

use common::browser::{Browser, page_of};
use common::{Mount, TestBoard};

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
