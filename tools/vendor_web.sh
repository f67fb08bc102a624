#!/usr/bin/env bash
# Refreshes the web app's vendored libraries (web/vendor/) from their npm release tarballs, so
# the browser app needs no CDN and no Node toolchain at build time. Run from the repository
# root; it needs npm and the npm registry. Bump the version here, run it, review the diff.
set -euo pipefail
cd "$(dirname "$0")/.."

UPLOT_VERSION=1.6.32

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null && tar xzf "uplot-$UPLOT_VERSION.tgz")
dest=web/vendor/uplot
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$dest/"
{
    echo "# uPlot $UPLOT_VERSION"
    echo
    echo "Source: the npm registry, https://registry.npmjs.org/uplot/-/uplot-$UPLOT_VERSION.tgz"
    echo "(files dist/uPlot.iife.min.js, dist/uPlot.min.css and LICENSE, unmodified)."
    echo "Licence: MIT, Copyright (c) 2022 Leon Sorokin (see LICENSE)."
    echo "Regenerate with tools/vendor_web.sh."
    echo
    echo "SHA-256:"
    echo
    (cd "$dest" && sha256sum uPlot.iife.min.js uPlot.min.css LICENSE | sed 's/^/    /')
} >"$dest/PROVENANCE.md"
echo "uPlot $UPLOT_VERSION vendored into $dest"
