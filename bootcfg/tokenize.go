package bootcfg

import "strings"

// Param is one kernel command-line parameter: Key, or Key=Value.
type Param struct {
	Key      string
	Value    string
	HasValue bool // "key=" (HasValue, empty Value) differs from "key"
}

// String returns the parameter as it would be written on the command line,
// quoting a value that holds white space.
func (p Param) String() string {
	if !p.HasValue {
		return p.Key
	}
	v := p.Value
	if strings.ContainsAny(v, " \t\n") {
		v = `"` + v + `"`
	}
	return p.Key + "=" + v
}

// Tokenize splits a command line the way the kernel's next_arg
// (lib/cmdline.c) does: parameters are separated by white space, double
// quotes group white space into one parameter and are removed around a
// value (key="a b") or a whole parameter ("key=a b"). A bare "--" ends the
// kernel's parameters; every word after it is an argument for init.
func Tokenize(cmdline string) (params []Param, initArgs []string) {
	rest := cmdline
	for {
		rest = strings.TrimLeft(rest, " \t\n\r\v\f")
		if rest == "" {
			return params, initArgs
		}
		var p Param
		p, rest = nextArg(rest)
		if p.Key == "--" && !p.HasValue {
			for {
				rest = strings.TrimLeft(rest, " \t\n\r\v\f")
				if rest == "" {
					return params, initArgs
				}
				p, rest = nextArg(rest)
				initArgs = append(initArgs, p.String())
			}
		}
		params = append(params, p)
	}
}

// nextArg mirrors lib/cmdline.c next_arg: it returns the first parameter of
// s (which starts with a non-space) and the unconsumed rest.
func nextArg(s string) (Param, string) {
	quoted := false
	if s[0] == '"' {
		s = s[1:]
		quoted = true
	}
	inQuote := quoted
	equals := -1
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if isSpace(c) && !inQuote {
			break
		}
		if equals < 0 && c == '=' && i > 0 { // like the kernel, a leading '=' is part of the key
			equals = i
		}
		if c == '"' {
			inQuote = !inQuote
		}
	}
	word, rest := s[:i], s[i:]
	var p Param
	if equals < 0 {
		p.Key = word
	} else {
		p.Key, p.Value, p.HasValue = word[:equals], word[equals+1:], true
		if strings.HasPrefix(p.Value, `"`) {
			p.Value = strings.TrimSuffix(p.Value[1:], `"`)
			quoted = false // the closing quote is gone already
		}
	}
	if quoted {
		if p.HasValue {
			p.Value = strings.TrimSuffix(p.Value, `"`)
		} else {
			p.Key = strings.TrimSuffix(p.Key, `"`)
		}
	}
	return p, rest
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}
