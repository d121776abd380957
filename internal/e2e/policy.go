package e2e

// AnySpeechCategory is the category of AnySpeechRule's alerts.
const AnySpeechCategory = "custom.e2e_speech"

// AnySpeechRule is one rule of a policy file (an item of its rules list,
// to append to policy.DefaultYAML) that flags each transcribed line with a
// word in it, whatever the words. It gives an end-to-end test an alert the
// pipeline owes whenever the engine transcribes the line at all (which is
// the pipeline's coverage), built from the engine's real words, timings
// and probabilities, so that the test's checks of what follows an alert
// (evidence, the console) never depend on a small model hearing a
// particular phrase. A minimal min_score: ASR confidence must not veto it.
const AnySpeechRule = `
  - id: custom.e2e.any_speech
    description: Any transcribed line (end-to-end tests only).
    category: ` + AnySpeechCategory + `
    severity: low
    strength: 1
    min_score: 0.01
    regex:
      patterns: ['[a-z][^\n]*']
`
