/** Error codes of the CNI spec ("Error" section) plus warren's own plugin-specific one. */
export const CNI_ERROR = {
  incompatibleVersion: 1,
  invalidEnvironment: 4,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  agentRefused: 999,
} as const;
