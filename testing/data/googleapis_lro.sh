#!/usr/bin/env bash
# Rebuilds googleapis_lro.bundle: the protobuf descriptors (each file's
# FileDescriptorProto gzip'd on its own, see split_descriptors.py; imports
# included, no source info) of every
# .proto file in the folders of those named in grpc_lro_methods.tsv (a declared
# response or metadata type may live in another file of its package), compiled
# by protox.
#
# usage: data/googleapis_lro.sh /path/to/googleapis   (a checkout of
#        https://github.com/googleapis/googleapis at the table's snapshot)
# needs: protox 0.10 (cargo install protox --version 0.10.0 --features bin),
#        python3 with protobuf (pip install protobuf)
set -euo pipefail
googleapis=${1:?usage: $0 /path/to/googleapis}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
mapfile -t dirs < <(grep -v '^#' "$here/grpc_lro_methods.tsv" | cut -f2 | xargs -n1 dirname | sort -u)
mapfile -t files < <(cd "$googleapis" && for d in "${dirs[@]}"; do ls "$d"/*.proto; done | sort -u)
(cd "$googleapis" && protox -I . --include-imports -o "$out" "${files[@]}")
python3 "$here/split_descriptors.py" "$out" "$here/googleapis_lro.bundle"
echo "wrote $here/googleapis_lro.bundle (${#files[@]} files and their imports)"
