package teleport

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A chunk is set aside only for failures retrying will not fix; an error
// that may be S3 throttling or a timeout wrapped by Athena's readEventChunk
// (Unknown, Internal) must also have lasted unsureSetAsideAfter.
func TestSetAsideDue(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		bad    int
		streak time.Duration
		want   bool
	}{
		{"NotFound after the attempts", status.Error(codes.NotFound, "event chunk not found"), 10, time.Second, true},
		{"BadParameter after the attempts", status.Error(codes.InvalidArgument, "invalid key format"), 10, 0, true},
		{"NotFound before the attempts", status.Error(codes.NotFound, "gone"), 9, time.Hour, false},
		{"Unknown, a short streak", status.Error(codes.Unknown, "SlowDown: please reduce your request rate"), 10, 40 * time.Second, false},
		{"Unknown, a long streak", status.Error(codes.Unknown, "cannot decode row"), 10, unsureSetAsideAfter, true},
		{"Internal, a short streak", status.Error(codes.Internal, "read timeout"), 50, 5 * time.Minute, false},
		{"a client-side decode error, a long streak", errors.New("chunk row 3: invalid UTF-8"), 10, 20 * time.Minute, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, setAsideDue(tc.bad, 10, tc.err, tc.streak))
		})
	}
}
