#!/bin/bash
# Exports one commit of this repository into DIR and builds it there, sharing this checkout's node_modules
# (the workspace links are relative, so @stowage/* resolve to DIR's own packages). For measuring a commit
# with `node bench/s3.mjs --tree DIR` while the working tree is being edited. Touches nothing in .git.
# Usage: bench/export-tree.sh COMMIT DIR
set -euo pipefail
COMMIT=$(git -C "$(dirname "$0")/.." rev-parse "${1:?usage: export-tree.sh COMMIT DIR}")
DIR=${2:?usage: export-tree.sh COMMIT DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$DIR"
mkdir -p "$DIR/node_modules/@stowage"
git -C "$ROOT" archive "$COMMIT" | tar -x -C "$DIR"
echo "$COMMIT" > "$DIR/.commit"
for entry in "$ROOT"/node_modules/* "$ROOT"/node_modules/.bin; do
  [ "$(basename "$entry")" = "@stowage" ] || ln -s "$entry" "$DIR/node_modules/"
done
cp -P "$ROOT"/node_modules/@stowage/* "$DIR/node_modules/@stowage/"
cd "$DIR" && npx tsc -b tsconfig.build.json
echo "built $COMMIT in $DIR"
