package bus

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/segmentio/kafka-go"
)

// kafkaLoggers adapts slog to kafka-go's Printf-style loggers. kafka-go logs
// every fetch and join at its info level, which is debug detail here; its
// error logger reports conditions it retries by itself, hence warn.
func kafkaLoggers(log *slog.Logger, component string) (info, errs kafka.Logger) {
	info = kafka.LoggerFunc(func(format string, args ...any) {
		if log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug(fmt.Sprintf(format, args...), "component", component)
		}
	})
	errs = kafka.LoggerFunc(func(format string, args ...any) {
		log.Warn(fmt.Sprintf(format, args...), "component", component)
	})
	return info, errs
}

func orDefault(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.Default()
	}
	return log
}

// quietAfter sends kafka-go's error reports to quiet once ctx is done.
func quietAfter(ctx context.Context, loud, quiet kafka.Logger) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if ctx.Err() != nil {
			quiet.Printf(format, args...)
			return
		}
		loud.Printf(format, args...)
	})
}
