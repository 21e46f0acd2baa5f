#!/bin/sh
# Seed 003's README sequence, verbatim but for host, port and credentials:
# token, a Content-Range PUT with multipart file + filename, completion POST,
# the listing, and a download in two ranges joined back together.
# usage: seed003.sh BASE_URL USERNAME PASSWORD FILE  (prints the joined file's path)
set -eu
BASE=$1; USERNAME=$2; PASSWORD=$3; FILE=$4
WORK=$(mktemp -d)
cd "$WORK"
cp "$FILE" some-image.png
SIZE=$(wc -c < some-image.png)

TOKEN=$(curl -sS -X POST -d "username=$USERNAME&password=$PASSWORD" "$BASE/api-token-auth/" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

curl -sS -H "Authorization: JWT $TOKEN" -H "Content-Range: bytes 1-$SIZE/$SIZE" \
     -F file=@some-image.png -F filename=some-image.png \
     -X PUT "$BASE/storage/tmp-upload/" > put.json
URL=$(python3 -c 'import json,sys; print(json.load(open("put.json"))["url"])')
ID=$(python3 -c 'import json,sys; print(json.load(open("put.json"))["id"])')

curl -sS -H "Authorization: JWT $TOKEN" -X POST "$URL" > complete.json

curl -sS -H "Authorization: JWT $TOKEN" "$BASE/storage/files/" > files.json
python3 -c "import json,sys; ids=[r['id'] for r in json.load(open('files.json'))['results']]; sys.exit(0 if '$ID' in ids else 'uploaded file not listed')"

DOWNLOAD="$BASE/storage/download/$ID/"
curl -sS -L -H "Authorization: JWT $TOKEN" --range 0-29999 -o img.part1 "$DOWNLOAD"
curl -sS -L -H "Authorization: JWT $TOKEN" --range "30000-$SIZE" -o img.part2 "$DOWNLOAD"
cat img.part? > img.png
echo "$WORK/img.png"
