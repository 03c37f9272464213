package scenario

import (
	"slices"
	"testing"

	"github.com/irsa-anywhere/irsa/e2e/images"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// irsa runs the images the scenario built, named explicitly; a default reference reaches the cluster only where
// it is pulled from its registry (the webhook on kind).
func TestImageFlagsOverrideTheDefaults(t *testing.T) {
	t.Parallel()
	host := imageFlags(images.WebhookRef)
	want := []string{"--image", images.IrsaRef, "--verify-image", images.IrsaRef, "--webhook-image", images.WebhookRef}
	if !slices.Equal(host, want) {
		t.Errorf("host cluster flags = %q, want %q", host, want)
	}
	for _, f := range host {
		if f == config.DefaultIrsaImage || f == config.DefaultWebhookImage || f == config.DefaultVerifyImage {
			t.Errorf("flag %q is a default reference", f)
		}
	}
	if kind := imageFlags(""); slices.Contains(kind, "--webhook-image") {
		t.Errorf("kind flags %q override the webhook image that kind pulls from upstream", kind)
	}
}
