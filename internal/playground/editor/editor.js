// The playground's editor: CodeMirror 6 with Python, bundled into
// ../static/editor.js by scripts/build-playground.sh. Colours come from the
// page's CSS (classHighlighter gives each token a tok-* class), so the light
// and dark themes are plain CSS.
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection, dropCursor, rectangularSelection, crosshairCursor,
  Decoration } from "@codemirror/view";
import { EditorState, StateEffect, StateField } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { indentOnInput, bracketMatching, foldGutter, foldKeymap, syntaxHighlighting,
  indentUnit } from "@codemirror/language";
import { closeBrackets, closeBracketsKeymap, autocompletion, completionKeymap } from "@codemirror/autocomplete";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { python } from "@codemirror/lang-python";
import { classHighlighter } from "@lezer/highlight";

// The failing line: set by markLine, cleared by any edit.
const setErrorLine = StateEffect.define();
const errorLine = StateField.define({
  create: () => Decoration.none,
  update(deco, tr) {
    for (const e of tr.effects) {
      if (e.is(setErrorLine)) {
        if (e.value == null) return Decoration.none;
        const line = tr.state.doc.line(e.value);
        return Decoration.set([Decoration.line({ class: "cm-error-line", attributes: { title: "The error was raised here" } }).range(line.from)]);
      }
    }
    return tr.docChanged ? Decoration.none : deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

// createEditor makes an editor in parent. onRun is called for Ctrl/Cmd+Enter,
// onChange after each edit. contentAttributes go on the editable element;
// nonce is the page's Content-Security-Policy nonce for the editor's styles.
export function createEditor(parent, { doc = "", onRun = () => {}, onChange = () => {}, contentAttributes = {}, nonce = "" } = {}) {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), foldGutter(),
        drawSelection(), dropCursor(), EditorState.allowMultipleSelections.of(true), indentOnInput(),
        syntaxHighlighting(classHighlighter), bracketMatching(), closeBrackets(), autocompletion(),
        rectangularSelection(), crosshairCursor(), highlightActiveLine(), highlightSelectionMatches(),
        indentUnit.of("    "), EditorState.tabSize.of(4), python(), errorLine, EditorView.cspNonce.of(nonce),
        keymap.of([
          { key: "Mod-Enter", run: () => { onRun(); return true; }, preventDefault: true },
          ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap,
          ...completionKeymap, indentWithTab,
        ]),
        EditorView.contentAttributes.of(contentAttributes),
        EditorView.updateListener.of((u) => { if (u.docChanged) onChange(); }),
      ],
    }),
  });
  return {
    view,
    getText: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text }, selection: { anchor: 0 } });
    },
    // markLine marks line n (1-based) as the failing one and scrolls to it;
    // null clears the mark.
    markLine(n) {
      if (n != null && (n < 1 || n > view.state.doc.lines)) n = null;
      const effects = [setErrorLine.of(n)];
      if (n != null) effects.push(EditorView.scrollIntoView(view.state.doc.line(n).from, { y: "center" }));
      view.dispatch({ effects });
    },
    focus: () => view.focus(),
  };
}
