#!/bin/sh
# Registers the stack's SPU with the Fluvio SC as a custom SPU, as Fluvio's own docker-compose example does
# (`fluvio profile add` + `fluvio cluster spu register`). The SC must know an SPU before that SPU connects, so the
# `fluvio-spu` service starts only after this has exited successfully. The SC keeps the registration in its metadata
# volume: on later starts this finds it and changes nothing.
set -eu

sc="${FLUVIO_SC:-fluvio-sc:9003}"
id="${SPU_ID:-5001}"
public="${SPU_PUBLIC_SERVER:-fluvio-spu:9010}"
private="${SPU_PRIVATE_SERVER:-fluvio-spu:9011}"

fluvio profile add compose "$sc" docker >/dev/null

# The SC may need a moment after its port opens before it answers admin requests.
tries=0
until fluvio cluster spu list --custom >/tmp/spus 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        cat /tmp/spus >&2
        echo "the Fluvio SC at $sc did not answer" >&2
        exit 1
    fi
    sleep 2
done

if grep -qw "custom-spu-$id" /tmp/spus; then
    echo "SPU $id is already registered"
else
    # The public endpoint is the address the SC hands to clients (the pipeline): the SPU's name on this network.
    fluvio cluster spu register --id "$id" --public-server "$public" --private-server "$private"
    echo "registered SPU $id (public $public, private $private)"
fi
