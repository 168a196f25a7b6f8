// The editor's packages, bundled by build.rs (esbuild) into one script that
// sets window.CM: the page loads no module from anywhere at run time.
import { basicSetup } from 'codemirror';
import { EditorView, keymap } from '@codemirror/view';
import { EditorState, Compartment } from '@codemirror/state';
import { python } from '@codemirror/lang-python';
import { indentWithTab } from '@codemirror/commands';
import { openSearchPanel } from '@codemirror/search';

window.CM = { basicSetup, EditorView, EditorState, Compartment, keymap, python, indentWithTab, openSearchPanel };
