package manifest

import (
	"slices"
	"strings"
)

// flagList is a kube-apiserver argument list (a container's command after the binary, or its args). Flags are read
// in both the `--name=value` and the `--name value` forms; the flags irsa writes are always in the `--name=value`
// form, one element per value.
type flagList []string

// occurrence is where one flag occurrence sits in the list: at start, taking width elements.
type occurrence struct {
	start, width int
	value        string
}

func (l flagList) occurrences(name string) []occurrence {
	var found []occurrence
	prefix := "--" + name
	for i := 0; i < len(l); i++ {
		arg := l[i]
		switch {
		case strings.HasPrefix(arg, prefix+"="):
			found = append(found, occurrence{start: i, width: 1, value: strings.TrimPrefix(arg, prefix+"=")})
		case arg == prefix && i+1 < len(l) && !strings.HasPrefix(l[i+1], "-"):
			found = append(found, occurrence{start: i, width: 2, value: l[i+1]})
			i++
		case arg == prefix:
			found = append(found, occurrence{start: i, width: 1})
		}
	}
	return found
}

// values returns every value given to a repeatable flag (a StringArray flag such as --service-account-issuer), in
// order.
func (l flagList) values(name string) []string {
	var values []string
	for _, o := range l.occurrences(name) {
		values = append(values, o.value)
	}
	return values
}

// sliceValues returns the values of a StringSlice flag such as --api-audiences, which may be repeated and whose
// values may each hold a comma-separated list.
func (l flagList) sliceValues(name string) []string {
	var values []string
	for _, v := range l.values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				values = append(values, part)
			}
		}
	}
	return values
}

// set replaces every occurrence of the flag with one `--name=value` element per value, where the flag first
// appeared; a flag that was absent is inserted before the first flag that sorts after it (kubeadm writes flags
// sorted by name), and no values removes the flag.
func (l flagList) set(name string, values []string) flagList {
	occs := l.occurrences(name)
	at := -1
	out := make(flagList, 0, len(l)+len(values))
	for i := 0; i < len(l); {
		if len(occs) > 0 && occs[0].start == i {
			if at < 0 {
				at = len(out)
			}
			i += occs[0].width
			occs = occs[1:]
			continue
		}
		out = append(out, l[i])
		i++
	}
	if at < 0 {
		at = len(out)
		for i, arg := range out {
			if flagName(arg) > name {
				at = i
				break
			}
		}
	}
	added := make([]string, 0, len(values))
	for _, v := range values {
		added = append(added, "--"+name+"="+v)
	}
	return slices.Insert(out, at, added...)
}

// flagName returns the name of a `--name[=value]` element, or "" for anything else.
func flagName(arg string) string {
	if !strings.HasPrefix(arg, "--") {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
	return name
}

// dedup returns values without empty strings and without repeats, keeping the first occurrence of each.
func dedup(values ...string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
