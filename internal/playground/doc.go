// Package playground serves the web page at GET /: a Python editor that runs
// its script through POST /v1/execute with live output. Everything the page
// needs is embedded in the binary (static/), so that it works with no
// network access: the editor is CodeMirror 6 from the npm registry, bundled
// into static/editor.js by scripts/build-playground.sh from editor/ (its
// package.json and package-lock.json). The bundle is committed; Go builds
// need no Node. static/examples.json holds the examples menu: the seed's ten
// test cases (cmd/server's tests check them against the seed's scripts),
// then a plot, files, an input, live output and a traceback.
//
// The page's Content-Security-Policy allows only its own origin (and data:
// images, for figures, and the editor's <style> elements, by a nonce made
// for each response): it loads nothing from elsewhere and can send nothing
// elsewhere.
package playground
