package janus

import "context"

// Create creates a temporary VideoRoom room (not saved to the plugin's
// configuration) for audio: Opus, up to publishers publishers.
func (v *VideoRoom) Create(ctx context.Context, room ID, description string, publishers int) error {
	_, _, err := v.call(ctx, "create", map[string]any{
		"request": "create", "room": room, "description": description,
		"publishers": publishers, "audiocodec": "opus", "permanent": false,
	}, nil)
	return err
}

// Destroy destroys a room; participants are told ("destroyed").
func (v *VideoRoom) Destroy(ctx context.Context, room ID) error {
	_, _, err := v.call(ctx, "destroy", map[string]any{"request": "destroy", "room": room, "permanent": false}, nil)
	return err
}

// Create creates a temporary AudioBridge room (not saved to the plugin's
// configuration) mixing at 48 kHz.
func (a *AudioBridge) Create(ctx context.Context, room ID, description string) error {
	_, _, err := a.call(ctx, "create", map[string]any{
		"request": "create", "room": room, "description": description,
		"sampling_rate": 48000, "permanent": false,
	}, nil)
	return err
}

// Destroy destroys a room; participants are told ("destroyed").
func (a *AudioBridge) Destroy(ctx context.Context, room ID) error {
	_, _, err := a.call(ctx, "destroy", map[string]any{"request": "destroy", "room": room, "permanent": false}, nil)
	return err
}
