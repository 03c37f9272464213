// Command hostcluster drives the e2e host cluster by hand: build its images, bring a node up and leave it running,
// or tear down whatever an earlier run left.
//
//	go run ./hack/e2e/hostcluster images   # build every e2e image tarball (cached)
//	go run ./hack/e2e/hostcluster up       # images + a running node; prints KUBECONFIG (needs root)
//	go run ./hack/e2e/hostcluster down     # remove the node an earlier `up` or a crashed test left
//
// Binaries come from hack/build-kubernetes.sh; tools from hack/e2e/install-deps.sh.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/irsa-anywhere/irsa/e2e/cluster/host"
	"github.com/irsa-anywhere/irsa/e2e/images"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: hostcluster images|up|down")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1], log); err != nil {
		fmt.Fprintln(os.Stderr, "hostcluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cmd string, log *slog.Logger) error {
	switch cmd {
	case "images":
		_, err := buildImages(ctx, log, images.AllNames())
		return err
	case "up":
		names := append(images.ClusterNames(), images.Webhook, images.Irsa, images.HTTPGet)
		imgs, err := buildImages(ctx, log, names)
		if err != nil {
			return err
		}
		var tarballs []string
		for _, i := range imgs {
			tarballs = append(tarballs, i.Tarball)
		}
		start := time.Now()
		c, err := host.Up(ctx, host.Options{Images: tarballs, Logger: log})
		if err != nil {
			_ = c.Delete(context.Background())
			return err
		}
		for _, p := range c.Timings() {
			log.Info("phase", "name", p.Name, "duration", p.Duration.Round(time.Millisecond))
		}
		fmt.Printf("cluster %s is up in %s (node %s, network namespace %s)\n", c.Name(), time.Since(start).Round(time.Millisecond), c.NodeIP(), c.NetNS())
		fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig())
		fmt.Printf("irsa flags for the images built here: --image %s --verify-image %s --webhook-image %s\n", images.IrsaRef, images.IrsaRef, images.WebhookRef)
		fmt.Printf("tear down: go run ./hack/e2e/hostcluster down (or the next host cluster run does it)\n")
		return nil
	case "down":
		return host.Down(ctx, log)
	}
	return fmt.Errorf("unknown command %q: want images, up or down", cmd)
}

func buildImages(ctx context.Context, log *slog.Logger, names []string) ([]images.Image, error) {
	start := time.Now()
	imgs, err := images.Build(ctx, images.Options{}, names...)
	if err != nil {
		return nil, err
	}
	for _, i := range imgs {
		log.Info("image", "ref", i.Ref, "cached", i.Cached, "tarball", i.Tarball)
	}
	log.Info("images built", "duration", time.Since(start).Round(time.Millisecond))
	return imgs, nil
}
