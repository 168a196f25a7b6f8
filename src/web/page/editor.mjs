// The editor's packages, bundled by build.rs (esbuild) into one script that
// sets window.CM: the page loads no module from anywhere at run time.
import { basicSetup } from 'codemirror';
import { EditorView, keymap } from '@codemirror/view';
import { EditorState, Compartment } from '@codemirror/state';
import { python } from '@codemirror/lang-python';
import { indentWithTab } from '@codemirror/commands';
import { openSearchPanel } from '@codemirror/search';
import { HighlightStyle, syntaxHighlighting, indentUnit } from '@codemirror/language';
import { tags as t } from '@lezer/highlight';

// The page is dark: CodeMirror's own colours are for a light page (its
// keywords #708 read at 1.7:1 here). Every colour below reads at 4.5:1 or
// more on the editor's background and on the current line's.
const BG = '#1e1e1e';
const dark = EditorView.theme(
  {
    '&': { color: '#d4d4d4', backgroundColor: BG },
    '.cm-content': { caretColor: '#f0f0f0' },
    '.cm-cursor, .cm-dropCursor': { borderLeftColor: '#f0f0f0' },
    '&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, ::selection':
      { backgroundColor: '#3a4a5c' },
    '.cm-activeLine': { backgroundColor: '#262626' },
    '.cm-gutters': { backgroundColor: BG, color: '#9a9a9a', borderRight: '1px solid #333' },
    '.cm-activeLineGutter': { backgroundColor: '#262626', color: '#d4d4d4' },
    '.cm-foldPlaceholder': { backgroundColor: '#333', border: 'none', color: '#ccc' },
    '.cm-panels': { backgroundColor: '#252525', color: '#d4d4d4' },
    '.cm-panels.cm-panels-top': { borderBottom: '1px solid #444' },
    '.cm-panels.cm-panels-bottom': { borderTop: '1px solid #444' },
    '.cm-panel input, .cm-panel button, .cm-textfield, .cm-button': {
      backgroundColor: '#333',
      backgroundImage: 'none',
      color: '#ddd',
      border: '1px solid #555',
    },
    '.cm-searchMatch': { backgroundColor: '#5a4a1a', outline: '1px solid #8a7a3a' },
    '.cm-searchMatch.cm-searchMatch-selected': { backgroundColor: '#3a5a2a' },
    '.cm-selectionMatch': { backgroundColor: '#333f4a' },
    '&.cm-focused .cm-matchingBracket': { backgroundColor: '#3b514d', color: '#fff' },
    '&.cm-focused .cm-nonmatchingBracket': { backgroundColor: '#6a2a2a', color: '#fff' },
    '.cm-tooltip': { backgroundColor: '#252525', color: '#ddd', border: '1px solid #444' },
    '.cm-tooltip-autocomplete > ul > li[aria-selected]': { backgroundColor: '#3a4a5c', color: '#fff' },
  },
  { dark: true },
);

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.operatorKeyword, t.definitionKeyword, t.moduleKeyword], color: '#d09ad0' },
  { tag: [t.function(t.variableName), t.function(t.definition(t.variableName)), t.function(t.propertyName)], color: '#dcdcaa' },
  { tag: [t.className, t.definition(t.className), t.typeName], color: '#4ec9b0' },
  { tag: [t.string, t.special(t.string), t.regexp], color: '#ce9178' },
  { tag: [t.number, t.integer, t.float], color: '#b5cea8' },
  { tag: [t.bool, t.null, t.atom, t.self, t.special(t.variableName)], color: '#6cb6ff' },
  { tag: [t.comment, t.lineComment, t.blockComment, t.docComment], color: '#7ca668', fontStyle: 'italic' },
  { tag: [t.variableName, t.definition(t.variableName), t.propertyName], color: '#9cdcfe' },
  { tag: [t.operator, t.punctuation, t.bracket, t.paren, t.squareBracket, t.brace], color: '#d4d4d4' },
  { tag: [t.meta, t.annotation, t.processingInstruction], color: '#b0b0b0' },
  { tag: t.invalid, color: '#ff7b7b' },
  { tag: t.heading, fontWeight: 'bold', color: '#6cb6ff' },
  { tag: t.link, color: '#6cb6ff', textDecoration: 'underline' },
]);

const theme = [dark, syntaxHighlighting(highlight)];

window.CM = { basicSetup, EditorView, EditorState, Compartment, keymap, python, indentWithTab, openSearchPanel, theme, indentUnit };
