// Package tomlx holds the value types nbdserve's TOML config shares
// between its sections (the server's and the PXE service's).
package tomlx

import "time"

// Duration is a time.Duration written as "90s" or "10m" in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d as a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
