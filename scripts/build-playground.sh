#!/bin/sh
# Rebuilds the playground's editor bundle, internal/playground/static/editor.js,
# from the npm packages pinned in internal/playground/editor/package-lock.json.
# Only needed after changing editor/editor.js or the packages: the bundle is
# committed, so `go build` needs no Node. Needs node and npm (apt-get install
# nodejs npm).
set -eu
cd "$(dirname "$0")/../internal/playground/editor"
npm ci --no-audit --no-fund
npx esbuild editor.js --bundle --format=esm --minify --target=es2020 --legal-comments=eof \
	--banner:js="// CodeMirror 6 and Lezer (MIT licence, codemirror.net), bundled by scripts/build-playground.sh." \
	--outfile=../static/editor.js
