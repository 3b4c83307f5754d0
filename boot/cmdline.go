package boot

import (
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
)

// ParseCommandLine is Env.Parse: bootcfg.Parse, then Validate. On error
// the Config returned (when not nil) still carries the shell settings.
func ParseCommandLine(line string) (*bootcfg.Config, error) {
	c, err := bootcfg.Parse(line)
	if c != nil && err == nil {
		err = c.Validate()
	}
	return c, err
}

// retry is the network and server deadline: nbdboot.retry=, else
// bootcfg.DefaultRetry.
func retry(c *bootcfg.Config) time.Duration {
	if c.Retry <= 0 {
		return bootcfg.DefaultRetry
	}
	return c.Retry
}
