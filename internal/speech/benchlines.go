package speech

// BenchSentences are the lines of the transcription benchmark's
// conversation (transcribe/e2etest) and of the whisper.cpp comparison with
// faster-whisper (transcribe/whispercpp): everyday English of 5 to 10 words,
// with a number said in words.
var BenchSentences = []string{
	"Good morning everyone and welcome to the call.",
	"Thanks for having me today.",
	"The next release is planned for the end of the month.",
	"Is the documentation ready for the new features?",
	"Most of it is written already.",
	"Could you share the draft with the team tomorrow?",
	"Yes, I will send it in the morning.",
	"We also need volunteers to test the mobile version.",
	"I can ask the people who joined last week.",
	"Thank you, that would help a lot.",
	"The weather this morning was cold but sunny.",
	"Please keep your microphone muted when you are not talking.",
	"We will take questions at the end of the session.",
	"The train to the city leaves at seven fifteen.",
	"Let us move on to the next item on the agenda.",
	"The library opens early on weekdays.",
	"Our team reviewed the report yesterday.",
	"Bright stars filled the night sky above the valley.",
	"She bought fresh bread at the market.",
	"Let us meet again next Tuesday at the same time.",
}
