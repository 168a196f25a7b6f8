// The terminal's packages (xterm.js and its fit addon), bundled by build.rs
// (esbuild, from their ES modules) into the one script served as
// /page/xterm.js: 345 KB to parse before the REPL is usable, where xterm's
// own UMD build is 490 KB.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';

window.Terminal = Terminal;
window.FitAddon = { FitAddon };
