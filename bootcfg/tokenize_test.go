package bootcfg

import (
	"reflect"
	"testing"
)

func TestTokenize(t *testing.T) {
	kv := func(k, v string) Param { return Param{Key: k, Value: v, HasValue: true} }
	flag := func(k string) Param { return Param{Key: k} }
	tests := []struct {
		in       string
		params   []Param
		initArgs []string
	}{
		{"", nil, nil},
		{"   \t\n", nil, nil},
		{"ro quiet", []Param{flag("ro"), flag("quiet")}, nil},
		{"root=/dev/nbd0 ip=dhcp", []Param{kv("root", "/dev/nbd0"), kv("ip", "dhcp")}, nil},
		{"a= b", []Param{kv("a", ""), flag("b")}, nil},
		{"a=b=c", []Param{kv("a", "b=c")}, nil},
		// A quoted value keeps its spaces; the quotes go.
		{`nbdroot="nbd://srv/my disk" ro`, []Param{kv("nbdroot", "nbd://srv/my disk"), flag("ro")}, nil},
		// A quoted whole parameter.
		{`"foo=bar baz" x`, []Param{kv("foo", "bar baz"), flag("x")}, nil},
		{`"lone word"`, []Param{flag("lone word")}, nil},
		// Quotes in the middle of a value stay, but group spaces.
		{`a=x"y z"w b`, []Param{kv("a", `x"y z"w`), flag("b")}, nil},
		// An unterminated quote runs to the end.
		{`a="b c`, []Param{kv("a", "b c")}, nil},
		// Like the kernel, '=' at the start belongs to the key.
		{`=x=y`, []Param{kv("=x", "y")}, nil},
		// "--" ends the kernel's parameters.
		{"ro -- single x=1", []Param{flag("ro")}, []string{"single", "x=1"}},
		{"ro --", []Param{flag("ro")}, nil},
		{"--=x ro", []Param{kv("--", "x"), flag("ro")}, nil},
		// Repeated keys are all kept, in order.
		{"ip=a ip=b", []Param{kv("ip", "a"), kv("ip", "b")}, nil},
	}
	for _, tt := range tests {
		params, initArgs := Tokenize(tt.in)
		if !reflect.DeepEqual(params, tt.params) || !reflect.DeepEqual(initArgs, tt.initArgs) {
			t.Errorf("Tokenize(%q) = %#v, %#v; want %#v, %#v", tt.in, params, initArgs, tt.params, tt.initArgs)
		}
	}
}

func TestParamString(t *testing.T) {
	for _, tt := range []struct {
		p    Param
		want string
	}{
		{Param{Key: "ro"}, "ro"},
		{Param{Key: "a", HasValue: true}, "a="},
		{Param{Key: "a", Value: "b c", HasValue: true}, `a="b c"`},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}
