package printable

import "testing"

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"lab/52:54:00:12:34:56", "lab/52:54:00:12:34:56"},
		{"", `""`},
		{"a b", `"a b"`},
		{"x\ty\n", `"x\ty\n"`},
		{"\x1b[2J", `"\x1b[2J"`},
		{`q"`, `"q\""`},
		{"é", `"\u00e9"`},
		{"pc17", "pc17"},
		{"pc1\tfake\t0", `"pc1\tfake\t0"`},
		{"x\nlab\tpc2\t1\t", `"x\nlab\tpc2\t1\t"`},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Room 4 image", "Room 4 image"},
		{"Salle 4 – Debian", "Salle 4 – Debian"},
		{"", ""},
		{"two\nlines", `"two\nlines"`},
		{"tab\there", `"tab\there"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{"bad \xff byte", `"bad \xff byte"`},
		{"\u202eright-to-left", `"\u202eright-to-left"`},
	} {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
