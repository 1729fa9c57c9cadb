# shellcheck shell=bash
# The nightly compose of buildrawhide and buildbranched; sourced by both
# after they set DIST (rawhide, branched) and BRANCHED (rawhide, or the
# release number).

usage() {
    cat <<USAGE
Usage: $PROG [--notify CMD] DATE [ARCH] [ENVIRONMENT]

The nightly $DIST compose: ostree repo, compose, summary, publication,
cloud images, CHECKSUM, mirror scan and metalinks.

  DATE         YYYYMMDD[.N], names the mash directory
  ARCH         default x86_64
  ENVIRONMENT  production (default), staging or development: the topic of
               the --notify events
  --notify CMD run CMD once per event with one JSON object on its stdin

Environment (every path lives under RELENG_ROOT, default /):
  TREEFILE     the rpm-ostree treefile   [\$ATOMICREPO/../fedora-atomic/fedora-atomic-docker-host.json]
  KICKSTART    the cloud image kickstart [\$ATOMICREPO/../fedora-atomic/fedora-cloud-atomic.ks]
  MIRRORS      mirrors file for mm-crawl mirrors (no mirror crawl when unset)
  ATOMICURL    ostree remote URL written into the images [the published repo's http URL]
  IMAGES=0     skip the cloud images (they need root)
  RELENG_BIN   directory holding the tools, searched before PATH
  NOTIFY_CMD   same as --notify
USAGE
}

parse_common_options "$@"
set -- "${ARGS[@]}"
[[ $# -ge 1 && $# -le 3 ]] || usage_error "want DATE [ARCH] [ENVIRONMENT]"
DATE=$1
ARCH=${2:-x86_64}
ENVIRONMENT=${3:-production}
check_date "$DATE"
check_arch "$ARCH"
check_environment "$ENVIRONMENT"

releng_path repo-init rpm-compose summary-gen qcow2-build mm-crawl metalink-emit jq rsync sha256sum

ROOT=$(releng_root)
MASHDIR=$ROOT/mnt/koji/mash/$DIST-$DATE
TREEPREFIX=$ROOT/pub/fedora/linux
ATOMICREPO=$ROOT/mnt/koji/mash/atomic/$BRANCHED
ATOMICDEST=$TREEPREFIX/atomic/$BRANCHED
TREEDEST=$TREEPREFIX/development/$BRANCHED
ATOMICCONFIG=$ROOT/mnt/koji/mash/atomic/fedora-atomic
TREEFILE=${TREEFILE:-$ATOMICCONFIG/fedora-atomic-docker-host.json}
KICKSTART=${KICKSTART:-$ATOMICCONFIG/fedora-cloud-atomic.ks}
ATOMICURL=${ATOMICURL:-https://dl.fedoraproject.org/pub/fedora/linux/atomic/$BRANCHED/}
IMAGEDIR=$MASHDIR/$DIST/Cloud/$ARCH/Images
CACHEDIR=$ROOT/var/cache/releng/$DIST
STATEDIR=$ROOT/var/lib/releng
METALINKDIR=$ROOT/srv/mirrorlist/metalinks
logdir=$MASHDIR/logs
MANIFEST=$logdir/manifest.json
export ARCH DATE DIST ENVIRONMENT

[[ -f $TREEFILE ]] || usage_error "TREEFILE $TREEFILE: no such file"
if [[ ${IMAGES:-1} != 0 ]]; then
    [[ -f $KICKSTART ]] || usage_error "KICKSTART $KICKSTART: no such file"
fi
if [[ -n ${MIRRORS:-} ]]; then
    [[ -f $MIRRORS ]] || usage_error "MIRRORS $MIRRORS: no such file"
fi

mkdir -p "$logdir" "$MASHDIR/$DIST" "$CACHEDIR" "$STATEDIR" "$METALINKDIR"
rm -f "$logdir/finish" "$logdir/.skipped"
touch "$logdir/start"
manifest_init
notify start

repo_init() {
    # Creates only when missing; an existing repo is left as it is.
    tool repo-init --repo "$ATOMICREPO" --mode archive
}

compose() {
    tool rpm-compose --treefile "$TREEFILE" --repo "$ATOMICREPO" \
        --cachedir "$CACHEDIR" --arch "$ARCH" \
        --write-composejson-to "$logdir/compose.json"
    manifest_get '.payload.composes[-1] | "\(.ref) = \(.commit) (changed: \(.changed))"'
}

summary() {
    tool summary-gen --repo "$ATOMICREPO"
}

publish_atomic() {
    publish_ostree "$ATOMICREPO" "$ATOMICDEST"
}

images() {
    if [[ ${IMAGES:-1} == 0 ]]; then
        skip "IMAGES=0"
        return
    fi
    local commit changed
    commit=$(manifest_get '.payload.composes[-1].commit')
    changed=$(manifest_get '.payload.composes[-1].changed')
    # The commit the images were built from, kept beside the logs.
    local built=$logdir/images.commit
    if [[ $changed == false && -s $IMAGEDIR/CHECKSUM && -s $built &&
        $(<"$built") == "$commit" ]]; then
        skip "no new commit: the images of $commit stand"
        return
    fi
    mkdir -p "$IMAGEDIR"
    tool qcow2-build --kickstart "$KICKSTART" --repo "$ATOMICREPO" \
        --output-dir "$IMAGEDIR" --ostree-url "$ATOMICURL" \
        --name "Fedora-Cloud-Atomic-$BRANCHED-$DATE.$ARCH"
    printf '%s\n' "$commit" >"$built"
}

checksum() {
    if [[ ${IMAGES:-1} == 0 ]]; then
        skip "IMAGES=0"
        return
    fi
    if [[ -s $IMAGEDIR/CHECKSUM && -z $(find "$IMAGEDIR" -maxdepth 1 -type f \
        -newer "$IMAGEDIR/CHECKSUM" ! -name CHECKSUM ! -name '.*') ]]; then
        skip "CHECKSUM is newer than every image"
        return
    fi
    checksum_images "$IMAGEDIR"
}

publish_tree_step() {
    publish_tree "$MASHDIR/$DIST" "$TREEDEST"
}

scan() {
    tool mm-crawl scan --root "$TREEPREFIX" --category "Fedora Linux" \
        --state "$STATEDIR/mm-crawl-scan.json"
    manifest_get '.payload.scan.repos[] | "\(.kind) \(.path) repo=\(.prefix) arch=\(.arch)"'
}

mirrors() {
    if [[ -z ${MIRRORS:-} ]]; then
        skip "MIRRORS is not set"
        return
    fi
    tool mm-crawl mirrors --mirrors "$MIRRORS" --state "$STATEDIR/mm-crawl-mirrors.json"
    manifest_get '.payload.mirrors.hosts[] | "\(.name): \(.state)"'
}

metalinks() {
    if [[ -z ${MIRRORS:-} ]]; then
        skip "no mirrors were crawled (MIRRORS is not set)"
        return
    fi
    tool metalink-emit --output-dir "$METALINKDIR"
    # The copy `metalink-emit serve` watches, replaced in one rename.
    cp "$MANIFEST" "$ROOT/srv/mirrorlist/.manifest.json.tmp"
    mv -f "$ROOT/srv/mirrorlist/.manifest.json.tmp" "$ROOT/srv/mirrorlist/manifest.json"
}

step repo-init repo_init
step rpm-compose compose
step summary-gen summary
step publish-atomic publish_atomic
step images images
step checksum checksum
step publish-tree publish_tree_step
step mm-crawl-scan scan
step mm-crawl-mirrors mirrors
step metalink-emit metalinks

touch "$logdir/finish"
notify complete
echo "$PROG: $DIST $DATE $ARCH complete; manifest $MANIFEST" >&2
