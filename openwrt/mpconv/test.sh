#!/bin/sh
# Run by the packages feed's CI on the target (under qemu) after installing the package:
# $1 = package name, $2 = package version (e.g. 0.1.0-r1 or 0.1.0-1).

case "$1" in
mpconv)
	out=$(mpconv --version) || exit 1
	echo "$out"
	if [ -n "$2" ]; then
		[ "$out" = "mpconv ${2%%-*}" ]
	else
		[ "${out#mpconv }" != "$out" ]
	fi
	;;
esac
