// Package config holds irsa's configuration (the irsa.yaml file and its flags), its validation and the constants
// that every stage must agree on.
package config
