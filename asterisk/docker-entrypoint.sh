#!/bin/sh
# Entrypoint of c2c-ari's Asterisk image (asterisk/Dockerfile; compose.yaml runs it).
#
# When the command is Asterisk (the image's default: asterisk -f -U asterisk -G asterisk),
# before starting it:
#  1. writes ari_users.conf, which ari.conf includes, with the ARI user C2C_ARI_USER (default
#     c2c) and the password C2C_ARI_PASSWORD: the same variables the c2c-ari service reads.
#     There is no default password: without one, or with characters ari.conf cannot hold,
#     this refuses to start.
#  2. sets http.conf's bindaddr to ASTERISK_HTTP_BIND (default 0.0.0.0). The shipped http.conf
#     binds 127.0.0.1, which in a container only the container itself reaches. 0.0.0.0 means
#     every interface of this container; compose.yaml publishes ARI on no host port, so only
#     containers on the compose network reach it. With host networking, set 127.0.0.1.
#  3. when ASTERISK_SYSTEMNAME is set, makes it asterisk.conf's `systemname` (the prefix of every
#     channel's unique id): nodes sharing ARI clients each need their own, or the ids of the
#     two could collide. Unset: asterisk.conf is left as it is.
#  4. creates Asterisk's run, log, lib and spool folders owned by the asterisk user.
# Any other command (a shell, say) runs as it is.
#
# ASTERISK_ROOT (default: empty, i.e. /) prefixes every path written; the tests point it at a
# scratch folder.
set -eu

root=${ASTERISK_ROOT:-}
etc=$root/etc/asterisk

die() {
    printf 'asterisk entrypoint: %s\n' "$*" >&2
    exit 1
}

# only_chars VALUE SET: true when VALUE is not empty and every character is in SET (the inside
# of a bracket expression).
only_chars() {
    case $1 in
        '' | *[!$2]*) return 1 ;;
    esac
    return 0
}

case ${1:-} in
    asterisk | */asterisk) ;;
    *) exec "$@" ;;
esac

# --- check every input before writing anything
user=${C2C_ARI_USER:-c2c}
password=${C2C_ARI_PASSWORD:-}
# Asterisk's config syntax: `;` starts a comment, `[`/`]` a section, no line breaks or spaces;
# HTTP Basic auth cannot carry a `:` in the user name.
[ -n "$password" ] || die "C2C_ARI_PASSWORD is not set: set the ARI password (the c2c-ari" \
    "service needs the same one)"
only_chars "$password" 'A-Za-z0-9._~!@%^*+=:/-' ||
    die "C2C_ARI_PASSWORD has characters ari.conf cannot hold; use letters, digits and ._~!@%^*+=:/-"
only_chars "$user" 'A-Za-z0-9._-' ||
    die "C2C_ARI_USER=$user: use letters, digits and ._- only"

http_bind=${ASTERISK_HTTP_BIND:-0.0.0.0}
only_chars "$http_bind" '0-9A-Fa-f.:' ||
    die "ASTERISK_HTTP_BIND=$http_bind is not an IP address"

http_conf=$etc/http.conf
[ -f "$http_conf" ] || die "$http_conf is missing"
grep -Eq '^bindaddr[[:space:]]*=' "$http_conf" ||
    die "$http_conf has no bindaddr line: ARI would not listen"
[ -f "$etc/ari.conf" ] || die "$etc/ari.conf is missing"
grep -q '^#tryinclude ari_users.conf' "$etc/ari.conf" ||
    die "$etc/ari.conf does not include ari_users.conf: the ARI user would not exist"

systemname=${ASTERISK_SYSTEMNAME:-}
asterisk_conf=$etc/asterisk.conf
if [ -n "$systemname" ]; then
    only_chars "$systemname" 'A-Za-z0-9._-' ||
        die "ASTERISK_SYSTEMNAME=$systemname: use letters, digits and ._- only"
    # c2c-ari takes channels whose ids start with c2c- for its own leftovers and hangs them up.
    case $systemname in
        c2c-*) die "ASTERISK_SYSTEMNAME=$systemname: c2c-... is the prefix of c2c-ari's own" \
            "channel ids; choose another name" ;;
    esac
    [ -f "$asterisk_conf" ] || die "$asterisk_conf is missing"
fi

asterisk_ids=
if id -u asterisk >/dev/null 2>&1; then
    asterisk_ids=asterisk:asterisk
fi

# --- 1. the ARI user
umask 027
tmp=$(mktemp "$etc/.ari_users.conf.XXXXXX") || die "cannot write in $etc"
cat >"$tmp" <<EOF
; Written by the container's entrypoint at every start, from C2C_ARI_USER and
; C2C_ARI_PASSWORD. Never commit this file or bake it into an image.
[$user]
type = user
read_only = no
password_format = plain
password = $password
EOF
chmod 0640 "$tmp"
# Asterisk reads it after dropping to the asterisk user.
[ -z "$asterisk_ids" ] || chown root:asterisk "$tmp"
mv -f "$tmp" "$etc/ari_users.conf" || die "cannot replace $etc/ari_users.conf"

# --- 2. where ARI listens
tmp=$(mktemp "$etc/.http.conf.XXXXXX") || die "cannot write in $etc"
sed -E "s/^bindaddr[[:space:]]*=.*/bindaddr = $http_bind/" "$http_conf" >"$tmp"
if cmp -s "$tmp" "$http_conf"; then
    rm -f "$tmp"
else
    chmod 0644 "$tmp"
    # A read-only or bind-mounted http.conf cannot be replaced: say what to do instead.
    mv -f "$tmp" "$http_conf" 2>/dev/null || {
        rm -f "$tmp"
        die "cannot rewrite $http_conf; set bindaddr = $http_bind in it yourself"
    }
fi

# The shipped pjsip.conf is the test configuration (SIPp peers on loopback): say so.
if grep -Eq '^bind[[:space:]]*=[[:space:]]*127\.' "$etc/pjsip.conf" 2>/dev/null; then
    echo "asterisk entrypoint: note: pjsip.conf is the shipped test configuration: SIP only on" \
        "this container's loopback, so no phone or trunk reaches it; mount your own pjsip.conf" \
        "for real use (see compose.yaml)" >&2
fi

# --- 3. this node's systemname: a systemname line of [options] replaced, else one added right
# after [options] (or an [options] section appended), so that every start gives the same file.
if [ -n "$systemname" ]; then
    tmp=$(mktemp "$etc/.asterisk.conf.XXXXXX") || die "cannot write in $etc"
    awk -v line="systemname = $systemname" '
        NR == FNR {
            if (/^\[/) { opts = /^\[options\]/ }
            else if (opts && /^[[:space:]]*systemname[[:space:]]*=/) { found = 1 }
            next
        }
        FNR == 1 { opts = 0 }
        /^\[/ { opts = /^\[options\]/ }
        opts && /^[[:space:]]*systemname[[:space:]]*=/ {
            if (!done) { print line; done = 1 }
            next
        }
        { print }
        opts && !found && !done { print line; done = 1 }
        END { if (!done) { print ""; print "[options]"; print line } }
    ' "$asterisk_conf" "$asterisk_conf" >"$tmp"
    if cmp -s "$tmp" "$asterisk_conf"; then
        rm -f "$tmp"
    else
        chmod 0644 "$tmp"
        mv -f "$tmp" "$asterisk_conf" 2>/dev/null || {
            rm -f "$tmp"
            die "cannot rewrite $asterisk_conf; set systemname = $systemname in its [options]" \
                "yourself"
        }
    fi
fi

# --- 4. Asterisk's own folders (a fresh volume or a tmpfs /run starts empty)
for dir in /var/run/asterisk /var/log/asterisk /var/lib/asterisk /var/spool/asterisk; do
    mkdir -p "$root$dir"
    [ -z "$asterisk_ids" ] || chown "$asterisk_ids" "$root$dir"
done

exec "$@"
