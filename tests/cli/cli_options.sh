# Every option of every command (the tables in src/, as `sluice
# --list-options` prints them) is in its --help synopsis and Options
# section, in the man page's synopsis and COMMANDS section, and in the
# bash completion, and the command accepts it: none can drift from the
# tables. And nothing is documented that the tables do not have.
. "$(dirname "$0")/lib.sh"

MAN_PAGE=$BUILD_DIR/doc/sluice.1
COMPLETION=$BUILD_DIR/doc/sluice.bash

# "[--a X | --b]..." -> " --a X --b ... ": brackets and bars as spaces.
norm() {
    printf ' %s ' "$*" | tr '[]()|\n' '      ' | tr -s ' '
}

# A value each kind of argument accepts, to show the option parses.
sample() {
    case $1 in
    FILE | DB) echo x.db ;;
    DIR | 'DIR|s3://BUCKET[/PREFIX]') echo somewhere ;;
    N | SEC) echo 1 ;;
    WHERE) echo latest ;;
    DURATION) echo 1h ;;
    R/s) echo 5/s ;;
    URL) echo http://s3.example ;;
    CIDR) echo 10.0.0.0/8 ;;
    FORMAT) echo csv ;;
    CLASS) echo http ;;
    STATE) echo done ;;
    NAME) echo image_url ;;
    C) echo ';' ;;
    ORIGIN) echo http://img.example:80 ;;
    ID...) echo sku-1 ;;
    kinesis://STREAM) echo kinesis://s ;;
    'id|origin') echo origin ;;
    *) return 1 ;;
    esac
}

# The --help synopsis of CMD's FORM ("-": the command's only one).
help_synopsis() {
    "$SLUICE" "$1" --help | sed '/^$/q' |
        awk -v cmd="$1" -v form="$2" '
            /sluice / {
                on = form == "-" || $0 ~ ("sluice " cmd " " form " ")
            }
            on { print }'
}

# The man page as text, one synopsis a line (wide enough for any).
[ -f "$MAN_PAGE" ] || fail "no man page at $MAN_PAGE"
[ -f "$COMPLETION" ] || fail "no completion at $COMPLETION"
man_text=$(LC_ALL=C MANWIDTH=1000 man -l "$MAN_PAGE" 2>/dev/null)
# The man page's COMMANDS section for CMD.
man_command() {
    printf '%s\n' "$man_text" |
        awk -v head="   sluice $1" '
            $0 == head { on = 1; next }
            on && (/^   sluice / || /^[A-Z]/) { exit }
            on { print }'
}

case_ "the tables list every command, and the tool builds them"
run "$SLUICE" --list-options
assert_rc 0
options=$out
for cmd in ingest run status dlq slots; do
    assert_has "$options" "$(printf '%s\t' "$cmd")"
done
run "$SLUICE" --man
assert_eq "$out" "$(cat "$MAN_PAGE")"
run "$SLUICE" --completion bash
assert_eq "$out" "$(cat "$COMPLETION")"

complete_words() {
    bash -c '
        . "$1"; shift
        COMP_WORDS=("$@")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        _sluice
        printf "%s\n" "${COMPREPLY[@]}"' _ "$COMPLETION" "$@"
}

checked=0
while IFS=$'\t' read -r cmd form long short arg; do
    sub=""
    [ "$form" = - ] || sub=" $form"
    case_ "sluice $cmd$sub $long"
    words=(sluice "$cmd")
    [ "$form" = - ] || words+=("$form")
    want=$long
    [ "$arg" = - ] || want="$long $arg"

    # --help: the synopsis of its form, and the Options section.
    synopsis=$(help_synopsis "$cmd" "$form")
    [ -n "$synopsis" ] || fail "no synopsis for $cmd $form in --help"
    assert_has "$(norm "$synopsis")" "$(norm "$want")"
    if [ "$short" != - ]; then
        assert_has "$(norm "$synopsis")" " $short "
    fi
    options_section=$("$SLUICE" "$cmd" --help | sed -n '/^Options:/,/^$/p')
    label=$want
    [ "$short" = - ] || label="$short, $want"
    printf '%s\n' "$options_section" | grep -qF -- "  $label" ||
        fail "'$label' is not in $cmd --help's Options"

    # The man page: the synopsis line of its form (of unnamed forms,
    # any: ingest FILE... and ingest kinesis://), its COMMANDS section.
    man_synopsis=$(printf '%s\n' "$man_text" |
        grep -E "^       sluice $cmd$sub( |$)" |
        if [ "$form" = - ]; then cat; else head -1; fi)
    assert_has "$(norm "$man_synopsis")" "$(norm "$want")"
    man_command "$cmd" | grep -qF -- "       $label" ||
        fail "'$label' is not in the man page's COMMANDS for $cmd"

    # The completion offers it after a dash.
    completions=$(complete_words "${words[@]}" -)
    printf '%s\n' "$completions" | grep -qxF -- "$long" ||
        fail "completion of '${words[*]} -' lacks $long: $completions"
    if [ "$short" != - ]; then
        printf '%s\n' "$completions" | grep -qxF -- "$short" ||
            fail "completion of '${words[*]} -' lacks $short"
    fi

    # The command takes it: parsed and handled, then the help.
    args=("$long")
    if [ "$arg" != - ]; then
        value=$(sample "$arg") || fail "no sample value for $arg: add one"
        args+=("$value")
    fi
    run "$SLUICE" "${words[@]:1}" "${args[@]}" --help </dev/null
    assert_rc 0 "$cmd ${args[*]} --help"
    assert_has "$out" "Usage: sluice $cmd"
    checked=$((checked + 1))
done <<<"$options"
echo "# $checked options checked"
[ "$checked" -gt 40 ] || fail "only $checked options in the tables"

case_ "nothing documented that the tables lack"
for cmd in ingest run status dlq slots; do
    documented=$("$SLUICE" "$cmd" --help | sed -n '/^Options:/,/^$/p' |
        grep -oE '^  (-[a-zA-Z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+')
    for name in $documented; do
        [ "$name" = --help ] && continue
        printf '%s\n' "$options" | cut -f1,3 | grep -qxF "$cmd	$name" ||
            fail "$cmd --help documents $name, which its table lacks"
    done
    for name in $(man_command "$cmd" |
        grep -oE '^       (-[a-zA-Z], )?--[a-z0-9-]+' |
        grep -oE -- '--[a-z0-9-]+'); do
        [ "$name" = --help ] && continue
        printf '%s\n' "$options" | cut -f1,3 | grep -qxF "$cmd	$name" ||
            fail "the man page documents $cmd $name, which its table lacks"
    done
done

case_ "no help text shows a missing value"
for cmd in ingest run status list dlq slots migrate publish; do
    help=$("$SLUICE" "$cmd" --help)
    case $help in
    *"(null)"*) fail "$cmd --help shows (null)" ;;
    esac
done

case_ "the completion: commands, subcommands, values"
assert_eq "$(complete_words sluice ru)" run
assert_eq "$(complete_words sluice run --max-c)" --max-concurrency
assert_eq "$(complete_words sluice ingest --format j)" jsonl
assert_eq "$(complete_words sluice dlq re)" replay
assert_eq "$(complete_words sluice dlq list --class too)" too_large
assert_eq "$(complete_words sluice help sta)" status
mkdir -p feeds && : >feeds/partner.jsonl
assert_eq "$(complete_words sluice ingest feeds/pa)" feeds/partner.jsonl

finish
