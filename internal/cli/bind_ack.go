package cli

import (
	"errors"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// parse reads bind's arguments: NAMESPACE/SERVICEACCOUNT, or --ack SERVICE with an optional NAMESPACE/SERVICEACCOUNT
// (a controller installed outside its chart's defaults). The ACK controller's defaults are filled in with the rest of
// the configuration (config.Defaults), which also refuses an unknown service.
func (o *bindOptions) parse(args []string) (config.Binding, error) {
	if len(args) == 0 {
		if o.ack == "" {
			return config.Binding{}, errors.New("bind: give NAMESPACE/SERVICEACCOUNT, or --ack SERVICE for an ACK controller")
		}
		return o.binding("")
	}
	return o.binding(args[0])
}
