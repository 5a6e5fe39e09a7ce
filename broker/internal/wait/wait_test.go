package wait

import (
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	open := make(chan struct{})
	if !Sleep(0, open) || !Sleep(time.Nanosecond, open) {
		t.Fatal("Sleep with an open stop channel reported a stop")
	}
	closed := make(chan struct{})
	close(closed)
	if Sleep(0, closed) || Sleep(time.Hour, closed) {
		t.Fatal("Sleep with a closed stop channel did not report the stop")
	}
}
