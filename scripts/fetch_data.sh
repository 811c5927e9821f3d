#!/bin/sh
# Downloads the official CIFAR-10 and CIFAR-100 binary archives and the four Fashion-MNIST
# files, checks their published md5 sums and unpacks them into DIR (default ./data), in the
# folders `activeip --data NAME` reads by default: DIR/cifar-10-batches-bin,
# DIR/cifar-100-binary, DIR/fashion-mnist. What is already there is not fetched again.
set -eu

PROG=fetch_data.sh

usage() {
    cat <<EOF
usage: scripts/fetch_data.sh [-h|--help] [DIR] [DATASET...]

Downloads, verifies (md5) and unpacks the official datasets into DIR (default: data,
relative to the current directory, which is where activeip looks by default):

  cifar10        DIR/cifar-10-batches-bin/   data_batch_1..5.bin, test_batch.bin
  cifar100       DIR/cifar-100-binary/       train.bin, test.bin
  fashion-mnist  DIR/fashion-mnist/          {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

DATASET names limit the work to those datasets (default: all three). A dataset whose
files are already present with the right sizes is skipped; a downloaded archive whose
md5 matches is reused. Needs curl or wget, tar, and md5sum (or md5, or openssl).
Without network access, put the files in place by hand and rerun to check them, or
point activeip at another copy with --data-dir.
EOF
}

fail() {
    echo "$PROG: error: $*" >&2
    exit 1
}

DIR=
DATASETS=
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        cifar10 | cifar100 | fashion-mnist) DATASETS="$DATASETS $1" ;;
        -*)
            echo "$PROG: unknown option '$1' (see --help)" >&2
            exit 2
            ;;
        *)
            if [ -n "$DIR" ]; then
                echo "$PROG: more than one DIR ('$DIR' and '$1'; see --help)" >&2
                exit 2
            fi
            DIR=$1
            ;;
    esac
    shift
done
[ -n "$DIR" ] || DIR=data
[ -n "$DATASETS" ] || DATASETS="cifar10 cifar100 fashion-mnist"

# A partial download is removed on any exit, so that a rerun never mistakes it for data.
PART=
cleanup() {
    if [ -n "$PART" ]; then rm -f "$PART"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The md5 tool is picked once, up front: a failure inside $(md5_of …) would only end the
# subshell and read as a checksum mismatch.
if command -v md5sum >/dev/null 2>&1; then
    MD5=md5sum
elif command -v md5 >/dev/null 2>&1; then
    MD5=md5
elif command -v openssl >/dev/null 2>&1; then
    MD5=openssl
else
    fail "no md5sum, md5 or openssl to verify downloads with"
fi

md5_of() {
    case $MD5 in
        md5sum) md5sum "$1" | cut -d ' ' -f 1 ;;
        md5) md5 -q "$1" ;;
        openssl) openssl md5 -r "$1" | cut -d ' ' -f 1 ;;
    esac
}

size_of() {
    wc -c <"$1" | tr -d ' '
}

# has_files FOLDER NAME:BYTES...: true when every NAME exists in FOLDER with BYTES bytes.
# (POSIX sh has no local variables: each function prefixes its own.)
has_files() {
    hf_folder=$1
    shift
    for hf_spec in "$@"; do
        hf_name=${hf_spec%%:*}
        [ -f "$hf_folder/$hf_name" ] || return 1
        [ "$(size_of "$hf_folder/$hf_name")" = "${hf_spec#*:}" ] || return 1
    done
    return 0
}

# download URL DEST: one attempt; returns the downloader's exit status.
download() {
    if command -v curl >/dev/null 2>&1; then
        curl -fL --progress-bar --retry 2 --connect-timeout 20 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -T 20 -t 3 -O "$2" "$1"
    else
        fail "neither curl nor wget is installed"
    fi
}

# fetch DEST MD5 URL...: leaves DEST with the given md5, reusing a verified DEST, trying
# the URLs in order. Never leaves a file with the wrong content at DEST.
fetch() {
    f_dest=$1
    f_sum=$2
    shift 2
    if [ -f "$f_dest" ] && [ "$(md5_of "$f_dest")" = "$f_sum" ]; then
        echo "  $f_dest: already downloaded, md5 ok"
        return 0
    fi
    PART=$f_dest.part
    for f_url in "$@"; do
        echo "  downloading $f_url"
        if download "$f_url" "$PART"; then
            f_got=$(md5_of "$PART")
            if [ "$f_got" = "$f_sum" ]; then
                mv -f "$PART" "$f_dest"
                PART=
                return 0
            fi
            echo "$PROG: $f_url: md5 $f_got, expected $f_sum (corrupt or changed download)" >&2
        else
            echo "$PROG: $f_url: download failed" >&2
        fi
        rm -f "$PART"
    done
    PART=
    fail "could not fetch $(basename "$f_dest") (offline? no route to the server?).
  Without network access, copy the file to $f_dest (or the unpacked data into $DIR)
  by hand and rerun this script, or pass --data-dir to activeip."
}

CIFAR10_FILES="data_batch_1.bin:30730000 data_batch_2.bin:30730000 data_batch_3.bin:30730000
data_batch_4.bin:30730000 data_batch_5.bin:30730000 test_batch.bin:30730000"
CIFAR100_FILES="train.bin:153700000 test.bin:30740000"

# fetch_archive NAME FOLDER ARCHIVE MD5 URL FILES: the CIFAR archives unpack to FOLDER.
fetch_archive() {
    fa_name=$1
    fa_folder=$2
    fa_archive=$3
    fa_sum=$4
    fa_url=$5
    fa_files=$6
    # shellcheck disable=SC2086  # FILES is a list of words
    if has_files "$DIR/$fa_folder" $fa_files; then
        echo "$fa_name: present in $DIR/$fa_folder"
        return 0
    fi
    echo "$fa_name: fetching into $DIR/$fa_folder"
    fetch "$DIR/$fa_archive" "$fa_sum" "$fa_url"
    echo "  unpacking $fa_archive"
    tar -xzf "$DIR/$fa_archive" -C "$DIR" || fail "cannot unpack $DIR/$fa_archive"
    # shellcheck disable=SC2086
    has_files "$DIR/$fa_folder" $fa_files || fail "$DIR/$fa_archive did not unpack to the expected files in $DIR/$fa_folder"
    rm -f "$DIR/$fa_archive"
    echo "$fa_name: done"
}

fetch_fashion() {
    ff_folder=$DIR/fashion-mnist
    mkdir -p "$ff_folder"
    ff_fetched=0
    # NAME MD5-of-NAME.gz BYTES-of-unpacked-NAME
    for ff_entry in \
        "train-images-idx3-ubyte 8d4fb7e6c68d591d4c3dfef9ec88bf0d 47040016" \
        "train-labels-idx1-ubyte 25c81989df183df01b3e8a0aad5dffbe 60008" \
        "t10k-images-idx3-ubyte bef4ecab320f06d8554ea6380940ec79 7840016" \
        "t10k-labels-idx1-ubyte bb300cfdad3c16e7a12a480ee83cd310 10008"; do
        # shellcheck disable=SC2086  # split the entry into its three fields
        set -- $ff_entry
        # The loaders read NAME or NAME.gz: either one, complete, counts as present.
        if [ -f "$ff_folder/$1.gz" ] && [ "$(md5_of "$ff_folder/$1.gz")" = "$2" ]; then continue; fi
        if has_files "$ff_folder" "$1:$3"; then continue; fi
        [ $ff_fetched = 1 ] || echo "fashion-mnist: fetching into $ff_folder"
        ff_fetched=1
        fetch "$ff_folder/$1.gz" "$2" \
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/$1.gz" \
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/$1.gz"
    done
    if [ $ff_fetched = 1 ]; then echo "fashion-mnist: done"; else echo "fashion-mnist: present in $ff_folder"; fi
}

mkdir -p "$DIR" || fail "cannot create $DIR"
for dataset in $DATASETS; do
    case $dataset in
        cifar10)
            fetch_archive cifar10 cifar-10-batches-bin cifar-10-binary.tar.gz c32a1d4ab5d03f1284b67883e8d87530 \
                https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz "$CIFAR10_FILES"
            ;;
        cifar100)
            fetch_archive cifar100 cifar-100-binary cifar-100-binary.tar.gz 03b5dce01913d631647c71ecec9e9cb8 \
                https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz "$CIFAR100_FILES"
            ;;
        fashion-mnist) fetch_fashion ;;
    esac
done
