//go:build !race

package jwtauth

const raceDetector = false
