package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLDD(t *testing.T) {
	t.Parallel()
	// ldd /usr/sbin/xtables-nft-multi in a Debian bookworm rootfs.
	out := `	linux-vdso.so.1 (0x00007ffd4b5f2000)
	libxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f0e1c5a2000)
	libmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f0e1c59b000)
	libnftnl.so.11 => /lib/x86_64-linux-gnu/libnftnl.so.11 (0x00007f0e1c571000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1c390000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f0e1c61a000)
`
	want := []string{
		"/lib/x86_64-linux-gnu/libxtables.so.12", "/lib/x86_64-linux-gnu/libmnl.so.0",
		"/lib/x86_64-linux-gnu/libnftnl.so.11", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
	}
	got, err := parseLDD(out)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseLDD = %q, %v; want %q", got, err, want)
	}
	if _, err := parseLDD(out + "\tlibmissing.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libmissing.so.1 not found") {
		t.Errorf("parseLDD with a missing library: error %v, want one naming libmissing.so.1", err)
	}
}
