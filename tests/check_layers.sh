#!/bin/sh
# init/'s layers, bottom up: pid1 net vm update supervisor ctl (main.c wires
# them). A file includes headers of its own folder and of those below it,
# never of one above: no arrow points back up. Run by `make lint`.
rc=0
set -- pid1 net vm update supervisor ctl
while [ $# -gt 0 ]; do
	layer=$1
	shift
	for above in "$@"; do
		if grep -Hn "#include \"$above/" init/"$layer"/*.[ch]; then
			echo "check_layers: init/$layer/ must not include $above/ (a layer above it)" >&2
			rc=1
		fi
	done
done
exit $rc
