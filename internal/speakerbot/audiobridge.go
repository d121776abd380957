package speakerbot

import (
	"context"

	"github.com/pion/webrtc/v4"

	"github.com/earshot/earshot/ingest/janus"
)

// RunAudioBridge is Run for an AudioBridge room: the bot joins Config.Room
// as an unmuted AudioBridge participant (Config.FeedID as its participant
// ID) and plays the file into the room's mix, with the same pacing,
// windows and publish log as Run.
func (b *Bot) RunAudioBridge(ctx context.Context) error {
	return b.runSession(ctx, func(ctx context.Context, sess *janus.Session, api *webrtc.API, feed janus.ID) (sink, error) {
		p, err := janus.JoinAudioBridge(ctx, sess, janus.AudioBridgeConfig{
			API: api, Room: b.cfg.Room, ID: feed, Display: b.cfg.Display, Send: true,
		})
		if err != nil {
			return nil, err
		}
		return bridgeSink{p}, nil
	})
}

// bridgeSink adapts an AudioBridge participant to sink.
type bridgeSink struct{ *janus.AudioBridgeParticipant }

func (s bridgeSink) FeedID() janus.ID { return s.ID() }

var _ sink = bridgeSink{}
