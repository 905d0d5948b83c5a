#!/usr/bin/env bash
# Sourced by main.sh, test.sh and .ci/run: the Debian package dataset-fashion-mnist
# (Fashion-MNIST's idx files in /usr/share/datasets/fashion-mnist), installed with
# apt-get when this user may (root, or sudo without a password).
# ensure_fashion_mnist: 0 when the files are there afterwards, 1 (and how) if not.
FASHION_MNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
ensure_fashion_mnist() {
    [ -f "$FASHION_MNIST" ] && return 0
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
    fi
    if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; }; then
        $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 ||
            { $sudo apt-get update -q >/dev/null 2>&1 || true
              $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || true; }
    fi
    [ -f "$FASHION_MNIST" ] && return 0
    echo "Fashion-MNIST is missing and could not be installed here:" >&2
    echo "    sudo apt-get install dataset-fashion-mnist" >&2
    return 1
}
