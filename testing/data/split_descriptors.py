"""Splits a FileDescriptorSet into the bundle tower-lro-testing reads.

usage: python3 split_descriptors.py SET OUT   (needs the `protobuf` package)

The bundle is a protobuf message `{repeated File files = 1}` with
`File {string name = 1; bytes gzip = 2}`: each .proto file's
FileDescriptorProto, gzip'd on its own, so the server decodes only the files a
method needs (its own and their imports) instead of the whole set.
"""

import gzip
import sys

from google.protobuf import descriptor_pb2


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def main(set_path, out_path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(set_path, "rb") as f:
        fds.ParseFromString(f.read())
    bundle = bytearray()
    for file in sorted(fds.file, key=lambda f: f.name):
        packed = gzip.compress(file.SerializeToString(), compresslevel=9, mtime=0)
        bundle += field(1, field(1, file.name.encode()) + field(2, packed))
    with open(out_path, "wb") as f:
        f.write(bundle)
    print(f"{len(fds.file)} files, {len(bundle)} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
